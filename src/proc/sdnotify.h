/*
 * sdnotify.h - the two things the master tells its supervisor: systemd
 * readiness (sd_notify(3) protocol: a datagram to $NOTIFY_SOCKET, no
 * libsystemd) and the pid file (`pid-file PATH`).
 */
#ifndef POSTERN_SDNOTIFY_H
#define POSTERN_SDNOTIFY_H

/* Send "READY=1", "STOPPING=1", ... when $NOTIFY_SOCKET is set; 0 when
 * sent or not asked for, -1 (logged) when sending failed. */
int	sdnotify_send(const char *state);

/* Write the master's pid to path (atomically); 0 or -1 (logged). */
int	pidfile_write(const char *path);
/* Remove it, if it still holds our pid. */
void	pidfile_remove(const char *path);

#endif
