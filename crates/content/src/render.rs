//! Markdown to safe HTML: pulldown-cmark renders CommonMark, ammonia removes everything a
//! browser could run (scripts, event handlers, `javascript:` and other non-web links, styles,
//! iframes), and links get `rel="noopener noreferrer"`.

use pulldown_cmark::{html, Options, Parser};

pub fn markdown_to_html(markdown: &str) -> String {
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_SMART_PUNCTUATION;
    let mut raw = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(&mut raw, Parser::new_ext(markdown, options));
    ammonia::Builder::default()
        .url_schemes(["http", "https", "mailto", "tel"].into_iter().collect())
        .clean(&raw)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::markdown_to_html;

    #[test]
    fn renders_markdown() {
        let html = markdown_to_html("## Refills\n\nKeep **every** visit.\n\n- one\n- two");
        assert!(html.contains("<h2>Refills</h2>"));
        assert!(html.contains("<strong>every</strong>"));
        assert!(html.contains("<li>one</li>"));
    }

    #[test]
    fn removes_scripts() {
        let html = markdown_to_html("Hi <script>alert(1)</script> there\n\n<script src=x></script>");
        assert!(!html.to_lowercase().contains("<script"), "{html}");
        assert!(!html.contains("alert(1)</script>"));
    }

    #[test]
    fn removes_event_handlers() {
        let html = markdown_to_html("<img src=\"a.png\" onerror=\"alert(1)\"> <p onclick=\"x()\">p</p>");
        assert!(
            !html.to_lowercase().contains("onerror") && !html.to_lowercase().contains("onclick"),
            "{html}"
        );
    }

    #[test]
    fn removes_javascript_links() {
        for md in [
            "[click](javascript:alert(1))",
            "<a href=\"javascript:alert(1)\">x</a>",
            "<a href=\"JaVaScRiPt:alert(1)\">x</a>",
            "[data](data:text/html;base64,PHNjcmlwdD4=)",
        ] {
            let html = markdown_to_html(md).to_lowercase();
            assert!(
                !html.contains("javascript:") && !html.contains("data:"),
                "{md} -> {html}"
            );
        }
        let ok = markdown_to_html("[call us](tel:+13125550100) and [book](/appointments/request)");
        assert!(
            ok.contains("href=\"tel:+13125550100\"") && ok.contains("href=\"/appointments/request\""),
            "{ok}"
        );
        assert!(markdown_to_html("[x](https://example.org)").contains("rel=\"noopener noreferrer\""));
    }

    #[test]
    fn removes_iframes_and_styles() {
        let html = markdown_to_html("<iframe src=\"https://evil\"></iframe><style>body{}</style><p style=\"x\">t</p>");
        assert!(
            !html.contains("<iframe") && !html.contains("<style") && !html.contains("style="),
            "{html}"
        );
    }
}
