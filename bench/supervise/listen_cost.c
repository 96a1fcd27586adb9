/*
 * The cost of one listen() system call: N calls on one bound socket,
 * then N getpid() calls as an untrapped reference. Built static, run with
 * and without `forcebacklog run --method supervise` (bench/supervise/run.sh).
 *
 *   listen_cost N   prints "listen X us/call, getpid Y us/call"
 */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 10000;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        perror("listen_cost: socket/bind");
        return 2;
    }
    double t0 = now_us();
    for (int i = 0; i < n; i++) listen(fd, 20);
    double t1 = now_us();
    for (int i = 0; i < n; i++) syscall(SYS_getpid);
    double t2 = now_us();
    printf("listen %.2f us/call, getpid %.3f us/call\n", (t1 - t0) / n, (t2 - t1) / n);
    return 0;
}
