/*
 * Test server for libforcebacklog.so: real listen() calls with a
 * hard-coded backlog, in the ways the shim tests need. Built at test time
 * with gcc (glibc) and musl-gcc (musl). Results go to stdout, one
 * "key value" line each; the process then waits for stdin to close so
 * the test can inspect its sockets with `ss`.
 *
 *   backlog_server listen BACKLOG [PORT...]  listen on 127.0.0.1:PORT (0 if
 *                                           none), print "listening FD PORT"
 *   backlog_server errno                     listen() on a non-socket, on a
 *                                           UDP socket and on
 *                                           a closed fd: print the results
 *   backlog_server threads T N BACKLOG EXPECT
 *                                           T threads x N listen() calls;
 *                                           check every result via TCP_INFO
 *   backlog_server spawn BACKLOG             fork, exec itself in "listen"
 *                                           mode, wait for it
 *
 * Built with -DRAW_LISTEN, listen() is issued as syscall(SYS_listen, ...).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* -DRAW_LISTEN: every listen() is the raw system call, as Go and some
 * static programs issue it (no libc function for a shim to replace). */
#ifdef RAW_LISTEN
#define listen(fd, backlog) ((int)syscall(SYS_listen, (fd), (backlog)))
#endif

static void die(const char *what) {
    fprintf(stderr, "backlog_server: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void wait_for_stdin_eof(void) {
    char buf[64];
    while (read(0, buf, sizeof buf) > 0) {
    }
}

static int bound_socket(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0) die("bind");
    return fd;
}

static int local_port(int fd) {
    struct sockaddr_in addr;
    socklen_t len = sizeof addr;
    if (getsockname(fd, (struct sockaddr *)&addr, &len) != 0) die("getsockname");
    return ntohs(addr.sin_port);
}

/* The backlog the kernel holds for a listening socket (what ss shows as
 * Send-Q): TCP_INFO reports sk_max_ack_backlog in tcpi_sacked. */
static long kernel_backlog(int fd) {
    struct tcp_info info;
    socklen_t len = sizeof info;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return -1;
    return (long)info.tcpi_sacked;
}

static int cmd_listen(int argc, char **argv) {
    int backlog = atoi(argv[2]);
    int count = argc > 3 ? argc - 3 : 1;
    for (int i = 0; i < count; i++) {
        int fd = bound_socket(argc > 3 ? atoi(argv[3 + i]) : 0);
        errno = 0;
        int ret = listen(fd, backlog);
        int err = errno;
        printf("listening %d %d ret %d errno %d\n", fd, local_port(fd), ret, err);
    }
    printf("ready\n");
    fflush(stdout);
    wait_for_stdin_eof();
    return 0;
}

static void report(const char *name, int ret, int err) {
    printf("%s ret %d errno %d %s\n", name, ret, err,
           err == ENOTSOCK ? "ENOTSOCK" : err == EBADF ? "EBADF" :
           err == EOPNOTSUPP ? "EOPNOTSUPP" : err == 0 ? "0" : "other");
}

static int cmd_errno(void) {
    /* fd 0 is stdin, a pipe or /dev/null in the tests: not a socket. */
    errno = 0;
    int ret = listen(0, 20);
    report("notsock", ret, errno);

    int fd = open("/dev/null", O_RDONLY);
    if (fd < 0) die("open");
    close(fd);
    errno = 0;
    ret = listen(fd, 20);
    report("closed", ret, errno);

    /* A UDP socket cannot listen. */
    int udp = socket(AF_INET, SOCK_DGRAM, 0);
    if (udp < 0) die("socket");
    errno = 0;
    ret = listen(udp, 20);
    report("udp", ret, errno);
    close(udp);

    /* A successful listen leaves errno as it was. */
    int sock = bound_socket(0);
    errno = 4242;
    ret = listen(sock, 20);
    printf("success ret %d errno %d backlog %ld\n", ret, errno, kernel_backlog(sock));
    printf("ready\n");
    fflush(stdout);
    return 0;
}

struct job {
    pthread_barrier_t *start;
    int sock;
    int calls;
    int backlog;
    long expect;
    int notsock;
    long failures;
    char first_failure[160];
};

static void fail(struct job *job, const char *fmt, long a, long b) {
    if (job->failures++ == 0)
        snprintf(job->first_failure, sizeof job->first_failure, fmt, a, b);
}

static void *worker(void *arg) {
    struct job *job = arg;
    int sock = job->sock;
    pthread_barrier_wait(job->start);
    for (int i = 0; i < job->calls; i++) {
        errno = 777;
        int ret = listen(sock, job->backlog);
        if (ret != 0) fail(job, "listen returned %ld errno %ld", ret, errno);
        else if (errno != 777) fail(job, "errno changed on success: %ld (call %ld)", errno, i);
        long got = kernel_backlog(sock);
        if (got != job->expect) fail(job, "backlog %ld, expected %ld", got, job->expect);
        if (i % 10 == 0) {
            errno = 0;
            ret = listen(job->notsock, job->backlog);
            if (ret != -1 || errno != ENOTSOCK)
                fail(job, "non-socket: ret %ld errno %ld", ret, errno);
            errno = 0;
            ret = listen(-1, job->backlog);
            if (ret != -1 || errno != EBADF)
                fail(job, "bad fd: ret %ld errno %ld", ret, errno);
        }
    }
    return NULL;
}

static int cmd_threads(char **argv) {
    int threads = atoi(argv[2]);
    int calls = atoi(argv[3]);
    int backlog = atoi(argv[4]);
    long expect = atol(argv[5]);
    int notsock = open("/dev/null", O_RDONLY);
    if (notsock < 0) die("open");
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)threads);
    pthread_t *ids = calloc((size_t)threads, sizeof *ids);
    struct job *jobs = calloc((size_t)threads, sizeof *jobs);
    if (!ids || !jobs) die("calloc");
    for (int t = 0; t < threads; t++) {
        int sock = bound_socket(0);
        jobs[t] = (struct job){.start = &start, .sock = sock, .calls = calls,
                               .backlog = backlog, .expect = expect, .notsock = notsock};
        if (pthread_create(&ids[t], NULL, worker, &jobs[t]) != 0) die("pthread_create");
    }
    long failures = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(ids[t], NULL);
        if (jobs[t].failures) {
            printf("thread %d failures %ld first: %s\n", t, jobs[t].failures, jobs[t].first_failure);
            failures += jobs[t].failures;
        }
    }
    for (int t = 0; t < threads; t++)
        printf("listening %d %d ret 0 errno 0\n", jobs[t].sock, local_port(jobs[t].sock));
    printf("calls %ld failures %ld\n", (long)threads * calls, failures);
    printf("ready\n");
    fflush(stdout);
    wait_for_stdin_eof();
    return failures ? 1 : 0;
}

static int cmd_spawn(char **argv) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
        char *child[] = {argv[0], "listen", argv[2], NULL};
        execv("/proc/self/exe", child);
        die("execv");
    }
    int status;
    if (waitpid(pid, &status, 0) < 0) die("waitpid");
    return WIFEXITED(status) ? WEXITSTATUS(status) : 3;
}

int main(int argc, char **argv) {
    if (argc >= 3 && strcmp(argv[1], "listen") == 0) return cmd_listen(argc, argv);
    if (argc == 2 && strcmp(argv[1], "errno") == 0) return cmd_errno();
    if (argc == 6 && strcmp(argv[1], "threads") == 0) return cmd_threads(argv);
    if (argc == 3 && strcmp(argv[1], "spawn") == 0) return cmd_spawn(argv);
    fprintf(stderr, "usage: see the comment at the top of backlog_server.c\n");
    return 2;
}
