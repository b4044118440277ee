#include "pgtest.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/migrate.h"

/* Ends the test process; Criterion reports the test as failed. */
static void die(const char *what, const char *detail)
{
    fprintf(stderr, "pgtest: %s%s\n", what, detail);
    exit(3);
}

static const char *base(void)
{
    const char *b = getenv("FA_TEST_PG");
    if (b == NULL || *b == '\0')
        die("", "FA_TEST_PG is not set: run integration tests through scripts/test.sh");
    return b;
}

PGconn *fa_pgtest_connect(const char *conninfo)
{
    PGconn *pg = PQconnectdb(conninfo);
    if (PQstatus(pg) != CONNECTION_OK)
        die("cannot connect: ", PQerrorMessage(pg));
    PGresult *r = PQexec(pg, "SET client_min_messages = warning");
    PQclear(r);
    return pg;
}

char *fa_pgtest_try(PGconn *pg, const char *sql, char *errbuf, size_t errcap)
{
    PGresult *r = PQexec(pg, sql);
    ExecStatusType s = PQresultStatus(r);
    char *out;

    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
        if (errbuf != NULL)
            (void)snprintf(errbuf, errcap, "%s", PQresultErrorMessage(r));
        PQclear(r);
        return NULL;
    }
    out = strdup(s == PGRES_TUPLES_OK && PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    return out;
}

char *fa_pgtest_query(PGconn *pg, const char *sql)
{
    char msg[512];
    char *out = fa_pgtest_try(pg, sql, msg, sizeof(msg));
    if (out == NULL)
        die("query failed: ", msg);
    return out;
}

static int create(char *out, size_t cap, int migrate)
{
    char name[64], sql[128];
    unsigned char rnd[6];
    int fd = open("/dev/urandom", O_RDONLY);
    PGconn *pg;

    if (fd < 0 || read(fd, rnd, sizeof(rnd)) != (ssize_t)sizeof(rnd))
        die("", "cannot read /dev/urandom");
    close(fd);
    (void)snprintf(name, sizeof(name), "fa_t_%ld_%02x%02x%02x%02x%02x%02x", (long)getpid(), rnd[0],
                   rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]);
    pg = fa_pgtest_connect(base());
    (void)snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
    free(fa_pgtest_query(pg, sql));
    PQfinish(pg);
    /* In a conninfo string a later keyword overrides an earlier one. */
    if ((size_t)snprintf(out, cap, "%s dbname=%s", base(), name) >= cap)
        die("", "conninfo buffer too small");
    if (migrate) {
        fa_migrate_opts opts = FA_MIGRATE_OPTS_INIT;
        fa_error err = FA_ERROR_INIT;
        int applied = 0;
        if (fa_migrate_run(&applied, out, &opts, &err) < 0)
            die("migrate failed: ", err.msg);
    }
    return 0;
}

int fa_pgtest_create_db(char *conninfo_out, size_t cap)
{
    return create(conninfo_out, cap, 1);
}

int fa_pgtest_create_empty_db(char *conninfo_out, size_t cap)
{
    return create(conninfo_out, cap, 0);
}

int fa_pgtest_run(char *out, size_t cap, const char *const *argv, const char *const *env)
{
    int pipefd[2];
    pid_t pid;
    size_t len = 0;
    int status = 0;
    const char *bin = getenv("FEDAGG_BIN");

    if (bin == NULL)
        die("", "FEDAGG_BIN is not set");
    if (pipe(pipefd) != 0)
        die("", "pipe failed");
    pid = fork();
    if (pid < 0)
        die("", "fork failed");
    if (pid == 0) {
        close(pipefd[0]);
        dup2(pipefd[1], 1);
        dup2(pipefd[1], 2);
        /* Daemons started by the child (pg_ctl) must not hold the pipe open. */
        close(pipefd[1]);
        for (size_t i = 0; env != NULL && env[i] != NULL; i++)
            putenv((char *)env[i]);
        if (strcmp(argv[0], "fedagg") == 0)
            execv(bin, (char *const *)argv);
        else
            execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(pipefd[1]);
    for (;;) {
        char buf[4096];
        ssize_t n = read(pipefd[0], buf, sizeof(buf));
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++)
            if (len + 1 < cap)
                out[len++] = buf[i];
    }
    if (cap > 0)
        out[len] = '\0';
    close(pipefd[0]);
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

const char *fa_pgtest_cluster_script(void)
{
    const char *s = getenv("FA_PG_CLUSTER");
    if (s == NULL)
        die("", "FA_PG_CLUSTER is not set");
    return s;
}

/* GCC defines __SANITIZE_ADDRESS__; clang before 15 only answers __has_feature. */
#if defined(__SANITIZE_ADDRESS__)
#define ASAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASAN_BUILD 1
#endif
#endif
#ifndef ASAN_BUILD
#define ASAN_BUILD 0
#endif

double fa_pgtest_time_scale(void)
{
    const char *v = getenv("FA_TEST_TIME_SCALE");
    char *end = NULL;

    if (v != NULL && *v != '\0') {
        double f = strtod(v, &end);
        if (*end != '\0' || !(f >= 1.0 && f <= 100.0))
            die("FA_TEST_TIME_SCALE must be a number from 1 to 100, got ", v);
        return f;
    }
    return ASAN_BUILD ? 2.0 : 1.0;
}

const char *fa_pgtest_deadline_env(char *buf, size_t cap, double seconds)
{
    (void)snprintf(buf, cap, "FEDAGG_ROUND_DEADLINE_S=%.3f", seconds);
    return buf;
}
