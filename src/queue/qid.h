/*
 * qid.h - queue ids: 16 upper-case hex digits, unique and sortable by
 * age.  13 digits of microseconds since 1970, strictly increasing within
 * a process, then 3 digits naming the process (worker number).
 */
#ifndef POSTERN_QID_H
#define POSTERN_QID_H

#include <stddef.h>

#define QID_LEN	16

void	qid_init(unsigned process_number);
void	qid_next(char out[QID_LEN + 1]);
int	qid_valid(const char *);
/* Which of n queue managers owns qid: a stable hash of the string, so
 * every process (and every restart) agrees. */
unsigned qid_owner(const char *qid, unsigned n);

#endif
