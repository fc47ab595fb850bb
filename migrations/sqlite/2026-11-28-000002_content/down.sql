DROP TABLE screening_answers;
DROP TABLE screenings;
DROP TABLE screening_criteria;
DROP TABLE article_revisions;
DROP TABLE article_conditions;
DROP TABLE article_tags;
DROP TABLE articles;
DROP TABLE conditions;
