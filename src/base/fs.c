#include "base/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

pc_status pc_copy_file(const char *from, const char *to, pc_error *err)
{
    FILE *in = fopen(from, "rb");
    if (!in) return pc_fail(err, PEFTC_ERR_IO, "cannot read %s: %s", from, strerror(errno));
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", to, (int)getpid());
    FILE *out = fopen(tmp, "wb");
    if (!out) { fclose(in); return pc_fail(err, PEFTC_ERR_IO, "cannot write %s: %s", tmp, strerror(errno)); }
    char buf[65536];
    size_t n;
    bool ok = true;
    while (ok && (n = fread(buf, 1, sizeof buf, in)) > 0) ok = fwrite(buf, 1, n, out) == n;
    ok = ok && !ferror(in);
    ok = (fflush(out) == 0) && ok && fsync(fileno(out)) == 0;
    ok = (fclose(out) == 0) && ok;
    fclose(in);
    if (!ok || rename(tmp, to) != 0) {
        int e = errno;
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
