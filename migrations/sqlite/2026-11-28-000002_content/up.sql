-- Content: conditions treated, patient-education articles with revisions, candidacy screening.
CREATE TABLE conditions (
    id TEXT PRIMARY KEY NOT NULL,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    summary TEXT NOT NULL,
    version BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE articles (
    id TEXT PRIMARY KEY NOT NULL,
    slug TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    summary TEXT NOT NULL,
    body_markdown TEXT NOT NULL,
    -- Sanitised HTML rendered from body_markdown when it was saved (a render cache per revision).
    body_html TEXT NOT NULL,
    author TEXT NOT NULL,
    status TEXT NOT NULL,
    -- Lower-cased title, summary and body, for word search.
    search_text TEXT NOT NULL,
    version BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    published_at TIMESTAMP
);
CREATE INDEX articles_listing ON articles (status, id);

CREATE TABLE article_tags (
    article_id TEXT NOT NULL REFERENCES articles (id),
    tag TEXT NOT NULL,
    PRIMARY KEY (article_id, tag)
);
CREATE INDEX article_tags_by_tag ON article_tags (tag, article_id);

CREATE TABLE article_conditions (
    article_id TEXT NOT NULL REFERENCES articles (id),
    condition_id TEXT NOT NULL REFERENCES conditions (id),
    PRIMARY KEY (article_id, condition_id)
);
CREATE INDEX article_conditions_by_condition ON article_conditions (condition_id, article_id);

-- One row per saved state of an article's content: who saved it, when, and what it said.
CREATE TABLE article_revisions (
    article_id TEXT NOT NULL REFERENCES articles (id),
    number BIGINT NOT NULL,
    slug TEXT NOT NULL,
    title TEXT NOT NULL,
    summary TEXT NOT NULL,
    body_markdown TEXT NOT NULL,
    -- Space-separated tags and condition ids as they were.
    tags TEXT NOT NULL,
    condition_ids TEXT NOT NULL,
    edited_by TEXT,
    edited_at TIMESTAMP NOT NULL,
    PRIMARY KEY (article_id, number)
);

CREATE TABLE screening_criteria (
    code TEXT PRIMARY KEY NOT NULL,
    question TEXT NOT NULL,
    why TEXT NOT NULL,
    required_for_trial BOOLEAN NOT NULL,
    required_for_implant BOOLEAN NOT NULL,
    active BOOLEAN NOT NULL,
    position BIGINT NOT NULL,
    version BIGINT NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE screenings (
    id TEXT PRIMARY KEY NOT NULL,
    patient_id TEXT NOT NULL REFERENCES patients (id),
    clinician TEXT NOT NULL,
    screened_on TEXT NOT NULL,
    result TEXT NOT NULL,
    explanation TEXT NOT NULL,
    recorded_by TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX screenings_by_patient ON screenings (patient_id, id);

-- Answers keep the question and flags as they were, so history reads true after edits.
CREATE TABLE screening_answers (
    screening_id TEXT NOT NULL REFERENCES screenings (id),
    criterion_code TEXT NOT NULL,
    question TEXT NOT NULL,
    required_for_trial BOOLEAN NOT NULL,
    required_for_implant BOOLEAN NOT NULL,
    position BIGINT NOT NULL,
    answer TEXT NOT NULL,
    note TEXT,
    PRIMARY KEY (screening_id, criterion_code)
);
