// TCP loopback ping-pong floor: a client thread and a server thread exchange ROUNDS round
// trips of a 1100-byte request and a 120-byte reply (about a 1 KiB send and its answer), with
// TCP_NODELAY, and print the median and p99 round trip. There is no server work at all: this
// is the least any broker on this machine can answer in. `taskset -c 0` pins both threads to
// one CPU for the same-CPU figure.
//
//   gcc -O2 -Wall -pthread scripts/loopback-rtt.c -o /tmp/loopback-rtt && /tmp/loopback-rtt

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { ROUNDS = 20000, REQUEST = 1100, REPLY = 120 };

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void read_exact(int fd, char *buf, int n) {
    for (int got = 0; got < n;) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0) die("read");
        got += (int)r;
    }
}

static void write_all(int fd, const char *buf, int n) {
    for (int put = 0; put < n;) {
        ssize_t w = write(fd, buf + put, n - put);
        if (w <= 0) die("write");
        put += (int)w;
    }
}

static void no_delay(int fd) {
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) die("TCP_NODELAY");
}

static void *serve(void *arg) {
    int conn = accept(*(int *)arg, NULL, NULL);
    if (conn < 0) die("accept");
    no_delay(conn);
    char buf[REQUEST];
    memset(buf, 0, sizeof buf);
    for (int i = 0; i < ROUNDS; i++) {
        read_exact(conn, buf, REQUEST);
        write_all(conn, buf, REPLY);
    }
    close(conn);
    return NULL;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(void) {
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    if (listener < 0) die("socket");
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) != 0) die("bind");
    if (getsockname(listener, (struct sockaddr *)&addr, &len) != 0) die("getsockname");
    if (listen(listener, 1) != 0) die("listen");

    pthread_t server;
    if (pthread_create(&server, NULL, serve, &listener) != 0) die("pthread_create");

    int conn = socket(AF_INET, SOCK_STREAM, 0);
    if (conn < 0 || connect(conn, (struct sockaddr *)&addr, sizeof addr) != 0) die("connect");
    no_delay(conn);

    static char buf[REQUEST];
    memset(buf, 1, sizeof buf);
    static double micros[ROUNDS];
    for (int i = 0; i < ROUNDS; i++) {
        struct timespec start, end;
        clock_gettime(CLOCK_MONOTONIC, &start);
        write_all(conn, buf, REQUEST);
        read_exact(conn, buf, REPLY);
        clock_gettime(CLOCK_MONOTONIC, &end);
        micros[i] = (end.tv_sec - start.tv_sec) * 1e6 + (end.tv_nsec - start.tv_nsec) / 1e3;
    }
    pthread_join(server, NULL);
    qsort(micros, ROUNDS, sizeof micros[0], by_value);
    printf("tcp loopback ping-pong, %d round trips of %d B / %d B: p50 %.1f us p99 %.1f us\n",
           ROUNDS, REQUEST, REPLY, micros[ROUNDS / 2], micros[ROUNDS * 99 / 100]);
    return 0;
}
