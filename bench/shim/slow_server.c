/*
 * Benchmark server: the program that cannot be changed. A hard-coded
 * listen(fd, 20), one thread, and about 1 ms of work per request, so it
 * serves roughly 1,000 requests per second.
 *
 *   slow_server PORT     listen on 127.0.0.1:PORT, print "ready", serve
 *                        forever: read the request, sleep 1 ms, answer
 *                        "ok\n", close.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: slow_server PORT\n");
        return 2;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)atoi(argv[1]));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        perror("bind");
        return 1;
    }
    if (listen(fd, 20) != 0) {
        perror("listen");
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    const struct timespec work = {0, 1000000};
    char buf[256];
    for (;;) {
        int conn = accept(fd, NULL, NULL);
        if (conn < 0) continue;
        (void)read(conn, buf, sizeof buf);
        nanosleep(&work, NULL);
        (void)write(conn, "ok\n", 3);
        close(conn);
    }
}
