-- The analytics app: one row per page view.
CREATE TABLE page_views (
    id INTEGER PRIMARY KEY,
    path VARCHAR(200) NOT NULL,
    visitor VARCHAR(100) NOT NULL
);
