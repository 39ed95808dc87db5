/* conf_lex.c - configuration line tokenizer (see conf_lex.h). */
#include "conf/conf_lex.h"

#include <string.h>

int
conf_lex_line(const char *line, size_t len, struct conf_line *cl,
    const char **err)
{
	size_t i = 0, o = 0;

	cl->nword = 0;
	if (len >= sizeof cl->text) {
		*err = "line too long";
		return -1;
	}
	if (memchr(line, '\0', len) != NULL) {
		*err = "NUL byte in line";
		return -1;
	}
	while (i < len) {
		int quoted = 0;

		while (i < len && (line[i] == ' ' || line[i] == '\t' ||
		    line[i] == '\r'))
			i++;
		if (i == len || line[i] == '#')
			break;
		if (cl->nword == CONF_MAX_WORDS) {
			*err = "too many words";
			return -1;
		}
		cl->word[cl->nword++] = &cl->text[o];
		while (i < len) {
			char c = line[i];

			if (c == '"') {
				quoted = !quoted;
				i++;
				continue;
			}
			if (!quoted && (c == ' ' || c == '\t' || c == '\r'))
				break;
			if ((unsigned char)c < 0x20 && c != '\t') {
				*err = "control character in line";
				return -1;
			}
			cl->text[o++] = c;
			i++;
		}
		if (quoted) {
			*err = "unterminated quoted string";
			return -1;
		}
		cl->text[o++] = '\0';
	}
	return 0;
}
