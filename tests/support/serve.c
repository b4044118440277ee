#include "serve.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"
#include "device/client.h"
#include "pgtest.h"

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "serve: %s%s\n", what, detail);
    exit(3);
}

void fa_test_keygen(char *dir_out, size_t cap)
{
    char out[4096], tmpl[] = "/tmp/fa-keys-XXXXXX", path[300];
    if (mkdtemp(tmpl) == NULL)
        die("mkdtemp failed", "");
    (void)snprintf(path, sizeof(path), "%s/k", tmpl);
    const char *argv[] = {"fedagg", "keygen", "--out", path, NULL};
    if (fa_pgtest_run(out, sizeof(out), argv, NULL) != 0)
        die("keygen failed: ", out);
    (void)snprintf(dir_out, cap, "%s", path);
}

void fa_test_server_start(fa_test_server *s, const char *db, const char *keydir,
                          const char *const *env)
{
    int fds[2];
    const char *bin = getenv("FEDAGG_BIN");
    char line[256];
    size_t len = 0;

    memset(s, 0, sizeof(*s));
    (void)snprintf(s->db, sizeof(s->db), "%s", db);
    (void)snprintf(s->keydir, sizeof(s->keydir), "%s", keydir);
    if (bin == NULL)
        die("FEDAGG_BIN is not set", "");
    if (pipe(fds) != 0)
        die("pipe failed", "");
    s->pid = fork();
    if (s->pid < 0)
        die("fork failed", "");
    if (s->pid == 0) {
        static char dburl[1100], kd[300];
        /* A test that crashes must not leave its server behind (it would
         * hold the test runner's output pipe open). */
        (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        (void)snprintf(dburl, sizeof(dburl), "DATABASE_URL=%s", db);
        (void)snprintf(kd, sizeof(kd), "FEDAGG_KEY_DIR=%s", keydir);
        putenv(dburl);
        putenv(kd);
        putenv("FEDAGG_PORT=0");
        /* The tests that build updates by hand build NCF ones; a test of
         * the ALS model says FEDAGG_MODEL=als in env. */
        putenv("FEDAGG_MODEL=ncf");
        /* serve refuses a noise seed unless told that its noise is
         * insecure: a test that asks for seeded noise says so here, and
         * may still override it through env (to test the refusal). */
        for (size_t i = 0; env != NULL && env[i] != NULL; i++)
            if (strncmp(env[i], "FEDAGG_NOISE_SEED=", 18) == 0 && env[i][18] != '\0')
                putenv("FEDAGG_INSECURE_SEEDED_NOISE=1");
        for (size_t i = 0; env != NULL && env[i] != NULL; i++)
            putenv((char *)env[i]);
        execl(bin, "fedagg", "serve", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    /* Read the "listening on http://host:port" line. */
    time_t until = time(NULL) + 60;
    while (time(NULL) < until) {
        char c;
        ssize_t n = read(fds[0], &c, 1);
        if (n <= 0)
            break;
        if (c == '\n') {
            line[len] = '\0';
            const char *p = strstr(line, "listening on ");
            if (p != NULL) {
                (void)snprintf(s->url, sizeof(s->url), "%s", p + strlen("listening on "));
                const char *colon = strrchr(s->url, ':');
                s->port = colon != NULL ? (int)strtol(colon + 1, NULL, 10) : 0;
                break;
            }
            len = 0;
        } else if (len + 1 < sizeof(line)) {
            line[len++] = c;
        }
    }
    close(fds[0]);
    if (s->port == 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        die("fedagg serve did not start (see its log above)", "");
    }
}

void fa_test_server_stop(fa_test_server *s, int sig)
{
    int status;
    if (s->pid <= 0)
        return;
    kill(s->pid, sig);
    waitpid(s->pid, &status, 0);
    s->pid = 0;
}

long fa_test_wait_version(const char *url, long v, int timeout_s)
{
    fa_device_client *c = NULL;
    fa_error err = FA_ERROR_INIT;
    long seen = -1;
    struct timespec pause = {0, 100 * 1000000L};

    if (fa_device_client_new(&c, url, &err) < 0)
        die("client: ", err.msg);
    time_t until = time(NULL) + timeout_s;
    while (time(NULL) < until) {
        long status = 0;
        char *body = NULL;
        if (fa_device_http(&status, &body, NULL, c, "GET", "/api/federated/model/latest", NULL,
                           NULL, 0, NULL, &err) == FA_OK &&
            status == 200) {
            json_t *j = json_loads(body, 0, NULL);
            seen = (long)json_integer_value(json_object_get(j, "version"));
            json_decref(j);
        }
        free(body);
        if (seen >= v)
            break;
        nanosleep(&pause, NULL);
    }
    fa_device_client_free(c);
    return seen;
}

void fa_test_sleep_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

long fa_test_sql_long(const char *db, const char *sql)
{
    PGconn *pg = fa_pgtest_connect(db);
    char *v = fa_pgtest_query(pg, sql);
    long n = strtol(v, NULL, 10);

    free(v);
    PQfinish(pg);
    return n;
}

double fa_test_round_deadline(const char *db, int64_t id)
{
    char q[160];
    PGconn *pg = fa_pgtest_connect(db);
    char *v;
    double d;

    (void)snprintf(q, sizeof(q),
                   "SELECT extract(epoch FROM deadline)::float8 FROM rounds WHERE id = %lld",
                   (long long)id);
    v = fa_pgtest_query(pg, q);
    d = strtod(v, NULL);
    free(v);
    PQfinish(pg);
    return d;
}

int64_t fa_test_fresh_round(const char *db, double left_s)
{
    char msg[96];

    for (int i = 0; i < 600; i++) {
        int64_t id =
            fa_test_sql_long(db, "SELECT coalesce(max(id), 0) FROM rounds WHERE state = 'open'");
        if (id > 0 && fa_test_round_deadline(db, id) - fa_wall_seconds() >= left_s)
            return id;
        fa_test_sleep_ms(50);
    }
    (void)snprintf(msg, sizeof(msg), "no round with %.1f s left within 30 s", left_s);
    die(msg, "");
    return 0;
}
