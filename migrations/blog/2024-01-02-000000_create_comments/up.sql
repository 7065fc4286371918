CREATE TABLE comments (
    id INTEGER PRIMARY KEY,
    post_slug VARCHAR(200) NOT NULL REFERENCES posts (slug),
    author VARCHAR(100) NOT NULL,
    body TEXT NOT NULL
);
