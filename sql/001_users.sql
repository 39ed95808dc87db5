-- postern users on PostgreSQL (docs/scaling.md): the fields of the users
-- file (src/auth/userdb.h), one row per account.  Applied by the auth
-- process and `postern user` at connection when schema_version says it
-- is missing; never edit an applied migration, add the next file.
CREATE TABLE users (
    name      text PRIMARY KEY
              CHECK (name ~ '^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$'),
    hash      text    NOT NULL DEFAULT '!',   -- crypt(3), '!' = no password
    expires   bigint  NOT NULL DEFAULT 0,     -- epoch seconds; 0 = never
    locked    boolean NOT NULL DEFAULT false,
    addresses text[]  NOT NULL DEFAULT '{}',
    secrets   text    NOT NULL DEFAULT '',    -- kind=value;kind=value
    changed   timestamptz NOT NULL DEFAULT now()
);
-- Names are matched without regard to case, as in the users file.
CREATE UNIQUE INDEX users_name_ci ON users (lower(name));

-- Bumped by every change to users: a node asks for this one number every
-- users-cache and reads the table again only when it moved.
CREATE TABLE users_generation (
    id  integer PRIMARY KEY CHECK (id = 1),
    n   bigint  NOT NULL
);
INSERT INTO users_generation VALUES (1, 1);

CREATE FUNCTION users_bump() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    UPDATE users_generation SET n = n + 1 WHERE id = 1;
    RETURN NULL;
END
$f$;

CREATE TRIGGER users_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON users FOR EACH STATEMENT EXECUTE FUNCTION users_bump();
