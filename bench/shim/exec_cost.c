/*
 * The cost of loading the shim: run a command N times (posix_spawn +
 * waitpid, one after another) and print the mean wall time per run in
 * microseconds. The environment is passed through unchanged, so the
 * caller decides whether LD_PRELOAD is set.
 *
 *   exec_cost N COMMAND [ARGS...]
 */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: exec_cost N COMMAND [ARGS...]\n");
        return 2;
    }
    long n = atol(argv[1]);
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (long i = 0; i < n; i++) {
        pid_t pid;
        if (posix_spawn(&pid, argv[2], NULL, NULL, argv + 2, environ) != 0) {
            perror("posix_spawn");
            return 1;
        }
        int status;
        if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "exec_cost: %s failed\n", argv[2]);
            return 1;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    double us = (end.tv_sec - start.tv_sec) * 1e6 + (end.tv_nsec - start.tv_nsec) / 1e3;
    printf("%.3f\n", us / (double)n);
    return 0;
}
