/*
 * unit_files.h - file helpers shared by the unit tests.  Include after
 * <cmocka.h>.
 */
#ifndef POSTERN_UNIT_FILES_H
#define POSTERN_UNIT_FILES_H

#include <stdio.h>

/* Write path whole, in place (truncate, then write): the edit a person
 * makes, which the file watchers must see through, unlike
 * write_file_atomic's rename. */
static inline void
unit_write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

#endif
