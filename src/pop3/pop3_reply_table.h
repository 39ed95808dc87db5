/*
 * pop3_reply_table.h - every POP3 status line postern sends, in one
 * place.  P3REPLY(name, ok, response code, text): ok is 1 for "+OK",
 * 0 for "-ERR"; the response code (RFC 2449 section 8, RFC 3206) is put
 * in brackets after -ERR; a "%s" in the text takes the argument given to
 * pop3_reply().  Included several times with different definitions.
 */
/* Positive */
P3REPLY(P_OK,			1, "",		"%s")
P3REPLY(P_USER_OK,		1, "",		"Send PASS")
P3REPLY(P_LOGIN_OK,		1, "",		"Logged in, %s")
P3REPLY(P_BYE,			1, "",		"Bye")
P3REPLY(P_BYE_UPDATE,		1, "",		"Bye, %s")
P3REPLY(P_CAPA_FOLLOWS,		1, "",		"Capability list follows")
P3REPLY(P_MECHS_FOLLOW,		1, "",		"Mechanisms follow")
P3REPLY(P_LIST_FOLLOWS,		1, "",		"Scan listing follows")
P3REPLY(P_UIDL_FOLLOWS,		1, "",		"Unique-ID listing follows")
P3REPLY(P_RETR_FOLLOWS,		1, "",		"%s octets")
P3REPLY(P_TOP_FOLLOWS,		1, "",		"Top of message follows")
P3REPLY(P_DELETED,		1, "",		"Message %s deleted")
P3REPLY(P_STLS_GO,		1, "",		"Begin TLS negotiation")

/* Authentication (RFC 3206: [AUTH] is about the credentials,
 * [SYS/TEMP] a passing problem on our side) */
P3REPLY(P_AUTH_FAILED,		0, "AUTH",	"Authentication failed")
P3REPLY(P_AUTH_NEEDS_TLS,	0, "AUTH",	"Plaintext authentication is only allowed after STLS")
P3REPLY(P_AUTH_TEMPFAIL,	0, "SYS/TEMP",	"Temporary authentication failure")
P3REPLY(P_AUTH_BLOCKED,		0, "SYS/TEMP",	"Too many authentication failures, closing connection")
P3REPLY(P_AUTH_MALFORMED,	0, "",		"Malformed authentication exchange")
P3REPLY(P_AUTH_CANCELLED,	0, "",		"Authentication cancelled")
P3REPLY(P_AUTH_MECH_UNKNOWN,	0, "",		"Unrecognized authentication mechanism")
P3REPLY(P_AUTH_BAD_BASE64,	0, "",		"Invalid base64 data")
P3REPLY(P_NEED_USER,		0, "",		"Send USER first")
P3REPLY(P_APOP_OFF,		0, "",		"APOP is not enabled")

/* The mailbox (RFC 2449 section 8.1.2: [IN-USE]) */
P3REPLY(P_IN_USE,		0, "IN-USE",	"Mailbox is in use by another session")
P3REPLY(P_MAILBOX_TEMPFAIL,	0, "SYS/TEMP",	"Cannot open the mailbox, try again later")
P3REPLY(P_UPDATE_FAILED,	0, "SYS/TEMP",	"Some deleted messages were not removed")
P3REPLY(P_NO_SUCH_MSG,		0, "",		"No such message")
P3REPLY(P_MSG_DELETED,		0, "",		"Message %s is deleted")
P3REPLY(P_MSG_GONE,		0, "",		"Message %s has been removed from the mailbox")

/* Protocol */
P3REPLY(P_UNKNOWN,		0, "",		"Unknown command")
P3REPLY(P_BAD_STATE,		0, "",		"Command not valid in this state")
P3REPLY(P_SYNTAX,		0, "",		"Syntax error in arguments")
P3REPLY(P_NUL_IN_COMMAND,	0, "",		"NUL byte in command")
P3REPLY(P_LINE_TOO_LONG,	0, "",		"Line too long")
P3REPLY(P_TLS_ACTIVE,		0, "",		"TLS is already active")
P3REPLY(P_STLS_UNAVAILABLE,	0, "",		"STLS is not available")
P3REPLY(P_TOO_MANY_ERRORS,	0, "",		"Too many errors, closing connection")
P3REPLY(P_TIMEOUT,		0, "",		"Timeout, closing connection")
P3REPLY(P_SHUTDOWN,		0, "SYS/TEMP",	"Server shutting down, closing connection")
P3REPLY(P_TOO_MANY_SESSIONS,	0, "SYS/TEMP",	"Too many connections, try again later")
