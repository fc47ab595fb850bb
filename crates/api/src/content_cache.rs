//! Published articles by slug, kept for a few seconds so the public pages and API — the
//! busiest anonymous traffic — mostly skip the database. Any edit made through this process
//! clears it; edits made by another instance show within [`TTL`].

use std::sync::Arc;
use std::time::Duration;

use actix_web::web::Bytes;
use clinic_content::articles::Article;
use moka::sync::Cache;

pub const TTL: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct ContentCache {
    articles: Cache<String, Arc<Article>>,
    /// Rendered article pages by slug (the page depends only on the article and the clinic).
    pages: Cache<String, Bytes>,
}

impl Default for ContentCache {
    fn default() -> Self {
        Self {
            articles: Cache::builder().max_capacity(2_000).time_to_live(TTL).build(),
            pages: Cache::builder().max_capacity(2_000).time_to_live(TTL).build(),
        }
    }
}

impl ContentCache {
    pub fn article(&self, slug: &str) -> Option<Arc<Article>> {
        self.articles.get(slug)
    }

    pub fn keep(&self, article: Arc<Article>) {
        self.articles.insert(article.slug.clone(), article);
    }

    pub fn page(&self, slug: &str) -> Option<Bytes> {
        self.pages.get(slug)
    }

    pub fn keep_page(&self, slug: String, html: Bytes) {
        self.pages.insert(slug, html);
    }

    /// After any change to articles or conditions.
    pub fn clear(&self) {
        self.articles.invalidate_all();
        self.pages.invalidate_all();
    }
}
