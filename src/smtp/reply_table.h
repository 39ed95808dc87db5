/*
 * reply_table.h - every SMTP reply postern sends, in one place.
 * REPLY(name, code, enhanced status (RFC 3463), text).  A "%s" in the
 * text is replaced by the argument given to smtp_reply(); sessions never
 * type digits.  Included several times with different REPLY definitions.
 */
/* Success and intermediate */
REPLY(R_ACTION_OK,			250, "2.0.0", "Ok")
REPLY(R_SENDER_OK,		250, "2.1.0", "Sender ok")
REPLY(R_RCPT_OK,		250, "2.1.5", "Recipient ok")
REPLY(R_QUEUED,			250, "2.0.0", "Ok: queued as %s")
REPLY(R_VRFY,			252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery")
REPLY(R_HELP,			214, "2.0.0", "See RFC 5321; commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP")
REPLY(R_BYE,			221, "2.0.0", "Bye")
REPLY(R_DATA_GO,		354, "",      "End data with <CR><LF>.<CR><LF>")
REPLY(R_STARTTLS_GO,		220, "2.0.0", "Ready to start TLS")
REPLY(R_AUTH_OK,		235, "2.7.0", "Authentication successful")

/* Temporary failures */
REPLY(R_SHUTDOWN,		421, "4.3.2", "Service shutting down, closing connection")
REPLY(R_TIMEOUT,		421, "4.4.2", "Timeout exceeded, closing connection")
REPLY(R_TOO_MANY_ERRORS,	421, "4.7.0", "Too many errors, closing connection")
REPLY(R_TOO_MANY_SESSIONS,	421, "4.3.2", "Too many connections, try again later")
REPLY(R_TOO_MANY_CONN_IP,	421, "4.7.0", "Too many connections from your address, try again later")
REPLY(R_RATE_LIMITED,		450, "4.7.1", "Sending rate limit exceeded, try again later")
REPLY(R_QUEUE_TEMPFAIL,		451, "4.3.0", "Local error in processing: message not queued, try again later")
REPLY(R_TOO_MANY_RCPTS,		452, "4.5.3", "Too many recipients")
REPLY(R_QUEUE_FULL,		452, "4.3.1", "Insufficient system storage")
REPLY(R_AUTH_TEMPFAIL,		454, "4.7.0", "Temporary authentication failure")
REPLY(R_AUTH_BLOCKED,		421, "4.7.0", "Too many authentication failures, closing connection")
REPLY(R_ACCESS_CLIENT_TEMPFAIL,	421, "4.7.1", "Client host refused: %s, closing connection")
REPLY(R_ACCESS_HELO_TEMPFAIL,	450, "4.7.1", "Helo command rejected: %s")
REPLY(R_ACCESS_SENDER_TEMPFAIL,	450, "4.7.1", "Sender address rejected: %s")
REPLY(R_ACCESS_RCPT_TEMPFAIL,	450, "4.7.1", "Recipient address rejected: %s")

/* Permanent failures: syntax and sequence */
REPLY(R_UNRECOGNIZED,		500, "5.5.1", "Command unrecognized")
REPLY(R_LINE_TOO_LONG,		500, "5.5.2", "Line too long")
REPLY(R_AUTH_LINE_TOO_LONG,	500, "5.5.6", "Authentication Exchange line is too long")
REPLY(R_SYNTAX,			501, "5.5.4", "Syntax error in parameters or arguments")
REPLY(R_SYNTAX_HELO,		501, "5.5.4", "Syntax: EHLO hostname")
REPLY(R_SYNTAX_MAIL,		501, "5.1.7", "Bad sender address syntax")
REPLY(R_SYNTAX_RCPT,		501, "5.1.3", "Bad recipient address syntax")
REPLY(R_NUL_IN_COMMAND,		500, "5.5.2", "NUL byte in command")
REPLY(R_NOT_IMPLEMENTED,	502, "5.5.1", "Command not implemented")
REPLY(R_NEED_HELO,		503, "5.5.1", "Send HELO/EHLO first")
REPLY(R_NESTED_MAIL,		503, "5.5.1", "Nested MAIL command")
REPLY(R_NEED_MAIL,		503, "5.5.1", "Need MAIL command")
REPLY(R_TLS_ACTIVE,		503, "5.5.1", "TLS already active")
REPLY(R_AUTH_ALREADY,		503, "5.5.1", "Already authenticated")
REPLY(R_AUTH_IN_TX,		503, "5.5.1", "AUTH not permitted during a mail transaction")
REPLY(R_AUTH_MECH_UNKNOWN,	504, "5.5.4", "Unrecognized authentication type")
REPLY(R_AUTH_CANCELLED,		501, "5.0.0", "Authentication cancelled")
REPLY(R_AUTH_BAD_BASE64,	501, "5.5.2", "Invalid base64 data")
REPLY(R_AUTH_MALFORMED,		501, "5.5.2", "Invalid authentication exchange")
REPLY(R_BAD_PARAM,		555, "5.5.4", "Unsupported MAIL FROM or RCPT TO parameter: %s")
REPLY(R_SYNTAX_PARAM,		501, "5.5.4", "Syntax error in parameter: %s")
REPLY(R_BARE_LF,		521, "5.5.2", "Bare LF or CR in message data (RFC 5321 section 2.3.8), closing connection")

/* Permanent failures: policy and content */
REPLY(R_UNKNOWN_USER,		550, "5.1.1", "Recipient address rejected: User unknown")
REPLY(R_RELAY_DENIED,		554, "5.7.1", "Relay access denied")
REPLY(R_AUTH_REQUIRED,		530, "5.7.0", "Authentication required")
REPLY(R_AUTH_NEEDS_TLS,		538, "5.7.11", "Encryption required for requested authentication mechanism")
REPLY(R_AUTH_FAILED,		535, "5.7.8", "Authentication credentials invalid")
REPLY(R_ACCOUNT_DISABLED,	530, "5.7.0", "Authentication required: account locked or expired")
REPLY(R_SENDER_NOT_OWNED,	553, "5.7.1", "Sender address rejected: not owned by user %s")
REPLY(R_FROM_NOT_OWNED,		550, "5.7.1", "Message rejected: From: not owned by user %s")
REPLY(R_ETRN_REFUSED,		502, "5.7.0", "ETRN is not permitted on this port")
REPLY(R_MSG_TOO_BIG,		552, "5.3.4", "Message size exceeds fixed limit")
REPLY(R_NO_VALID_RCPTS,		554, "5.5.1", "No valid recipients")

/* Permanent failures: the access map (docs/access.md); %s is the rule's
 * text or "Access denied" */
REPLY(R_ACCESS_CLIENT_REJECT,	554, "5.7.1", "Client host rejected: %s")
REPLY(R_ACCESS_QUIT_ONLY,	503, "5.7.1", "Client host rejected: only QUIT is accepted")
REPLY(R_ACCESS_HELO_REJECT,	554, "5.7.1", "Helo command rejected: %s")
REPLY(R_ACCESS_SENDER_REJECT,	554, "5.7.1", "Sender address rejected: %s")
REPLY(R_ACCESS_RCPT_REJECT,	554, "5.7.1", "Recipient address rejected: %s")
