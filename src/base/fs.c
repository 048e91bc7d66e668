#include "base/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

pc_status pc_mkdirs(const char *path, pc_error *err)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return pc_fail(err, PEFTC_ERR_INVALID, "path too long: %s", path);
    for (char *p = buf + 1; ; p++) {
        if (*p != '/' && *p != '\0') continue;
        char c = *p;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return pc_fail(err, PEFTC_ERR_IO, "cannot create directory %s: %s", buf, strerror(errno));
        *p = c;
        if (c == '\0') break;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return pc_fail(err, PEFTC_ERR_IO, "%s exists and is not a directory", path);
    return PEFTC_OK;
}

pc_status pc_remove_tree(const char *path, pc_error *err)
{
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? PEFTC_OK : pc_fail(err, PEFTC_ERR_IO, "%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (!d) return pc_fail(err, PEFTC_ERR_IO, "cannot open directory %s: %s", path, strerror(errno));
        struct dirent *e;
        pc_status s = PEFTC_OK;
        while (!s && (e = readdir(d))) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            char child[4096];
            snprintf(child, sizeof child, "%s/%s", path, e->d_name);
            s = pc_remove_tree(child, err);
        }
        closedir(d);
        if (s) return s;
        if (rmdir(path) != 0) return pc_fail(err, PEFTC_ERR_IO, "cannot remove %s: %s", path, strerror(errno));
        return PEFTC_OK;
    }
    if (unlink(path) != 0) return pc_fail(err, PEFTC_ERR_IO, "cannot remove %s: %s", path, strerror(errno));
    return PEFTC_OK;
}

bool pc_path_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static long long writes_left = -1;   /* pc_fs_fail_writes_after; < 0: no limit */

void pc_fs_fail_writes_after(long long bytes) { writes_left = bytes; }

ssize_t pc_fs_write(int fd, const void *buf, size_t n)
{
    if (writes_left >= 0) {
        if (writes_left == 0 && n > 0) { errno = ENOSPC; return -1; }
        if ((unsigned long long)n > (unsigned long long)writes_left) n = (size_t)writes_left;
        writes_left -= (long long)n;
    }
    return write(fd, buf, n);
}

/* Writes all n bytes (retrying short writes); false with errno set on failure. */
static bool write_fully(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = pc_fs_write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) { if (w == 0) errno = EIO; return false; }
        p += w;
        n -= (size_t)w;
    }
    return true;
}

pc_status pc_copy_file(const char *from, const char *to, pc_error *err)
{
    FILE *in = fopen(from, "rb");
    if (!in) return pc_fail(err, PEFTC_ERR_IO, "cannot read %s: %s", from, strerror(errno));
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", to, (int)getpid());
    int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) { fclose(in); return pc_fail(err, PEFTC_ERR_IO, "cannot write %s: %s", tmp, strerror(errno)); }
    char buf[65536];
    size_t n;
    bool ok = true;
    while (ok && (n = fread(buf, 1, sizeof buf, in)) > 0) ok = write_fully(out, buf, n);
    if (ok && ferror(in)) { ok = false; errno = EIO; }
    ok = ok && fsync(out) == 0;
    int e = errno;
    if (close(out) != 0 && ok) { ok = false; e = errno; }
    fclose(in);
    if (ok && rename(tmp, to) != 0) { ok = false; e = errno; }
    if (!ok) {
        unlink(tmp);
        return pc_fail(err, PEFTC_ERR_IO, "cannot write %s: %s", to, strerror(e));
    }
    return PEFTC_OK;
}

pc_status pc_read_file(const char *path, size_t limit, char **out, size_t *len, pc_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return pc_fail(err, PEFTC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return pc_fail(err, PEFTC_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return pc_fail(err, PEFTC_ERR_IO, "%s: not a regular file", path);
    }
    if ((unsigned long long)st.st_size > limit) {
        close(fd);
        return pc_fail(err, PEFTC_ERR_FORMAT, "%s: file is %lld bytes, more than the %zu-byte limit",
                       path, (long long)st.st_size, limit);
    }
    size_t size = (size_t)st.st_size, got = 0;
    char *buf = malloc(size + 1);
    if (!buf) {
        close(fd);
        return pc_fail(err, PEFTC_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, size);
    }
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int e = r < 0 ? errno : 0;
            close(fd);
            free(buf);
            return pc_fail(err, PEFTC_ERR_IO, "%s: read failed after %zu of %zu bytes: %s", path, got, size,
                           e ? strerror(e) : "file shrank while reading");
        }
        got += (size_t)r;
    }
    close(fd);
    buf[size] = '\0';
    *out = buf;
    *len = size;
    return PEFTC_OK;
}

void pc_pages_offer(const void *p, size_t bytes)
{
#ifdef MADV_PAGEOUT
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), lo = ((uintptr_t)p + page - 1) / page * page,
              hi = ((uintptr_t)p + bytes) / page * page;
    if (hi > lo) madvise((void *)lo, hi - lo, MADV_PAGEOUT);
#else
    (void)p; (void)bytes;
#endif
}
