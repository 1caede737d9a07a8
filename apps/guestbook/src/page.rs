//! The HTML page: the form, one page of entries and the pager.
//!
//! Every string that came from a visitor (names, messages, the values kept
//! in the form) and the context path go through [`html_escape`].

use crabcat_sdk::html_escape;

use crate::entries::{Entry, Listing, MESSAGE_MAX, NAME_MAX};

/// What the form shows: the visitor's input as typed, and the problems
/// with it (empty on a fresh page).
#[derive(Debug, Default)]
pub struct FormState<'a> {
    pub name: &'a str,
    pub message: &'a str,
    pub errors: &'a [String],
}

/// What the page knows of the visitor, from the session.
#[derive(Debug, Default)]
pub struct Visitor {
    /// A message left by the previous request, shown once.
    pub flash: Option<String>,
    /// The session's CSRF token, sent back by the form.
    pub csrf: String,
}

/// The whole page for app mounted at `context_path`.
pub fn render(context_path: &str, listing: &Listing, form: &FormState<'_>, visitor: &Visitor) -> String {
    let base = html_escape(context_path);
    let flash = visitor.flash.as_deref().map_or_else(String::new, |text| {
        format!("<p class=\"flash\" role=\"status\">{}</p>\n", html_escape(text))
    });
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Guestbook</title>\n<link rel=\"stylesheet\" href=\"{base}/static/style.css\">\n</head>\n<body>\n<main>\n\
         <h1><a href=\"{base}/\">Guestbook</a></h1>\n{flash}{form}{entries}{pager}</main>\n</body>\n</html>\n",
        form = form_html(&base, form, &visitor.csrf),
        entries = entries_html(listing),
        pager = pager_html(&base, listing),
    )
}

/// The `403` page for a post without the session's CSRF token.
pub fn forbidden(context_path: &str) -> String {
    let base = html_escape(context_path);
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Guestbook: form refused</title>\n<link rel=\"stylesheet\" href=\"{base}/static/style.css\">\n</head>\n\
         <body>\n<main>\n<h1>Form refused</h1>\n<p class=\"errors\" role=\"alert\">This form has expired or did not come \
         from this site, so nothing was stored.</p>\n<p><a href=\"{base}/\">Back to the guestbook</a>: reload the page \
         and sign again.</p>\n</main>\n</body>\n</html>\n"
    )
}

/// The sign-in form; `base` is the escaped context path.
fn form_html(base: &str, form: &FormState<'_>, csrf: &str) -> String {
    // The newline after <textarea> is eaten by the HTML parser, so a
    // message that starts with one keeps it.
    format!(
        "<form method=\"post\" action=\"{base}/entries\">\n<h2>Sign the guestbook</h2>\n{errors}\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\n\
         <label for=\"name\">Name</label>\n\
         <input id=\"name\" name=\"name\" maxlength=\"{NAME_MAX}\" required value=\"{name}\">\n\
         <label for=\"message\">Message</label>\n\
         <textarea id=\"message\" name=\"message\" rows=\"4\" maxlength=\"{MESSAGE_MAX}\" required>\n{message}</textarea>\n\
         <button type=\"submit\">Sign</button>\n</form>\n",
        errors = errors_html(form.errors),
        csrf = html_escape(csrf),
        name = html_escape(form.name),
        message = html_escape(form.message),
    )
}

fn errors_html(errors: &[String]) -> String {
    if errors.is_empty() {
        return String::new();
    }
    let items: String = errors
        .iter()
        .map(|e| format!("<li>{}</li>\n", html_escape(e)))
        .collect();
    format!("<ul class=\"errors\" role=\"alert\">\n{items}</ul>\n")
}

fn entries_html(listing: &Listing) -> String {
    if listing.entries.is_empty() {
        let text = if listing.page == 1 {
            "No entries yet: be the first to sign!"
        } else {
            "No entries on this page."
        };
        return format!("<p class=\"empty\">{text}</p>\n");
    }
    let items: String = listing.entries.iter().map(entry_html).collect();
    format!("<section aria-label=\"Entries\">\n{items}</section>\n")
}

fn entry_html(entry: &Entry) -> String {
    let (iso, human) = utc_timestamp(entry.created_at);
    format!(
        "<article>\n<strong>{name}</strong> <time datetime=\"{iso}\">{human}</time>\n<p>{message}</p>\n</article>\n",
        name = html_escape(&entry.name),
        message = html_escape(&entry.message),
    )
}

/// Links to the newer and older pages; `base` is the escaped context path.
fn pager_html(base: &str, listing: &Listing) -> String {
    let page = listing.page;
    let newer = if listing.has_newer() {
        format!(
            "<a href=\"{}\" rel=\"prev\">&larr; Newer</a>",
            page_href(base, page - 1)
        )
    } else {
        "<span></span>".to_owned()
    };
    let older = if listing.has_older() {
        format!(
            "<a href=\"{}\" rel=\"next\">Older &rarr;</a>",
            page_href(base, page + 1)
        )
    } else {
        "<span></span>".to_owned()
    };
    format!(
        "<nav aria-label=\"Pages\">\n{newer}\n<span>Page {page} of {pages}</span>\n{older}\n</nav>\n",
        pages = listing.pages(),
    )
}

fn page_href(base: &str, page: u32) -> String {
    if page <= 1 {
        format!("{base}/")
    } else {
        format!("{base}/?page={page}")
    }
}

/// Unix seconds as `("2024-05-01T12:34:56Z", "2024-05-01 12:34 UTC")`.
fn utc_timestamp(secs: i64) -> (String, String) {
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    let (hour, minute, second) = (rest / 3600, rest % 3600 / 60, rest % 60);
    (
        format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z"),
        format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02} UTC"),
    )
}

/// Days since 1970-01-01 to a (year, month, day) of the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
