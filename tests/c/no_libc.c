/*
 * A dynamically linked program with no libc at all, linked directly
 * against libforcebacklog.so (x86_64 only). None of the libc symbols the
 * shim borrows (dlsym, getenv, __errno_location) exists, so this proves
 * that the shim still loads and that its raw-syscall fallback returns
 * the kernel's result. Prints "ok" or "fail N" and exits 0 or 1.
 */
int listen(int fd, int backlog);

static long sys3(long n, long a, long b, long c) {
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c)
                     : "rcx", "r11", "memory");
    return ret;
}

static void finish(long failed) {
    static const char ok[] = "ok\n";
    static char fail[] = "fail ?\n";
    if (failed) {
        fail[5] = (char)('0' + failed);
        sys3(1, 1, (long)fail, sizeof fail - 1);
    } else {
        sys3(1, 1, (long)ok, sizeof ok - 1);
    }
    sys3(231 /* exit_group */, failed ? 1 : 0, 0, 0);
}

__attribute__((force_align_arg_pointer, noreturn)) void _start(void) {
    long fd = sys3(41 /* socket */, 2 /* AF_INET */, 1 /* SOCK_STREAM */, 0);
    long failed = 0;
    if (fd < 0) failed = 1;
    else if (listen((int)fd, 20) != 0) failed = 2;
    else if (listen(-1, 20) != -1) failed = 3;
    else if (listen(1 /* stdout, a pipe */, 20) != -1) failed = 4;
    finish(failed);
    for (;;) {
    }
}
