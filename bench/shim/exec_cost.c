/*
 * The cost of loading the shim: run a command N times (posix_spawn +
 * waitpid, one after another) and print two means per run in
 * microseconds: wall time, and the CPU time (user + system) the runs
 * used, which a busy machine disturbs less. The environment is passed through unchanged, so the
 * caller decides whether LD_PRELOAD is set.
 *
 *   exec_cost N COMMAND [ARGS...]
 */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
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
    struct rusage usage;
    getrusage(RUSAGE_CHILDREN, &usage);
    double cpu = (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1e6 +
                 usage.ru_utime.tv_usec + usage.ru_stime.tv_usec;
    printf("%.3f %.3f\n", us / (double)n, cpu / (double)n);
    return 0;
}
