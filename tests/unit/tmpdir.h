/* Temporary directories of the unit tests that open a real store: made
 * with mkdtemp by each test, removed with everything in them by
 * remove_tree. The including file defines _GNU_SOURCE first (nftw). */
#ifndef RTM_TEST_TMPDIR_H
#define RTM_TEST_TMPDIR_H

#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>

static int remove_tree_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Removes dir and everything below it; returns 0, or -1 on a failure. */
static inline int remove_tree(const char *dir)
{
    return nftw(dir, remove_tree_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
