/*
 * conf_lex.h - split one configuration line into words.
 * Words are separated by blanks; '#' at the start of a word begins a
 * comment; "double quotes" keep blanks inside a word.
 */
#ifndef POSTERN_CONF_LEX_H
#define POSTERN_CONF_LEX_H

#include <stddef.h>

#define CONF_MAX_WORDS	64
#define CONF_LINE_MAX	4096

struct conf_line {
	char	 text[CONF_LINE_MAX];
	char	*word[CONF_MAX_WORDS];
	size_t	 nword;
};

/* Returns 0, or -1 with *err set to a static description. */
int	conf_lex_line(const char *line, size_t len, struct conf_line *,
	    const char **err);

#endif
