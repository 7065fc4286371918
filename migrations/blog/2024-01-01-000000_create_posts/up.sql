-- The blog app: posts (portable SQL: runs on SQLite and PostgreSQL).
CREATE TABLE posts (
    slug VARCHAR(200) PRIMARY KEY,
    title VARCHAR(200) NOT NULL,
    body TEXT NOT NULL
);
