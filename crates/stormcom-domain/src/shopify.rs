//! Reader for Shopify's product CSV export, in both header vocabularies: the classic one
//! (`Handle`, `Variant Price`, `Image Src`, …) and the 2025 one (`URL handle`, `Price`,
//! `Product image URL`, …). Headers are matched case-insensitively.
//!
//! Rows sharing a handle form one product; the first row carries the product fields,
//! later rows carry more variants, and a row with only image columns adds an image.
//! A product with any bad row is rejected whole (each bad row reported with its line and
//! reason): the product is the unit of atomicity, so nothing is ever half-imported.

use std::collections::HashMap;

use crate::catalog::{self, InventoryPolicy, ProductStatus};
use crate::money::{Currency, parse_amount};
use crate::validation::ValidationErrors;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportProduct {
    /// Line of the product's first row (1-based, the header is line 1).
    pub line: u64,
    pub handle: String,
    pub title: String,
    pub description_html: String,
    pub vendor: String,
    pub product_type: String,
    pub tags: Vec<String>,
    pub published: bool,
    pub status: ProductStatus,
    pub option_names: [String; 3],
    pub variants: Vec<ImportVariant>,
    pub images: Vec<ImportImage>,
    /// Every line this product was read from, for error reports.
    pub lines: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportVariant {
    pub line: u64,
    pub options: [String; 3],
    pub sku: Option<String>,
    pub grams: i64,
    pub inventory_quantity: i64,
    pub inventory_policy: InventoryPolicy,
    pub price: i64,
    pub compare_at_price: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportImage {
    pub line: u64,
    pub src: String,
    pub position: i64,
    pub alt_text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowRejection {
    pub line: u64,
    pub handle: Option<String>,
    pub reason: String,
}

/// The parsed file: products ready to write, and the rows that were refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportPlan {
    pub products: Vec<ImportProduct>,
    pub rejected: Vec<RowRejection>,
    /// Products dropped because one of their rows was bad.
    pub products_rejected: usize,
}

/// A problem with the file as a whole; nothing is imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("the file is empty")]
    Empty,
    #[error("the file has no '{0}' column")]
    MissingColumn(&'static str),
    #[error("the file is not valid CSV near line {line}: {reason}")]
    Malformed { line: u64, reason: String },
    #[error("the file is not UTF-8 text near line {line}")]
    NotUtf8 { line: u64 },
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Field {
    Handle,
    Title,
    Body,
    Vendor,
    Type,
    Tags,
    Published,
    Status,
    OptionName(usize),
    OptionValue(usize),
    Sku,
    Grams,
    Quantity,
    Policy,
    ContinueSelling,
    Price,
    CompareAt,
    ImageSrc,
    ImagePosition,
    ImageAlt,
}

fn field_for_header(header: &str) -> Option<Field> {
    let h = header.trim().to_ascii_lowercase();
    let field = match h.as_str() {
        "handle" | "url handle" => Field::Handle,
        "title" => Field::Title,
        "body (html)" | "description" => Field::Body,
        "vendor" => Field::Vendor,
        "type" => Field::Type,
        "tags" => Field::Tags,
        "published" | "published on online store" => Field::Published,
        "status" => Field::Status,
        "variant sku" | "sku" => Field::Sku,
        "variant grams" | "weight value (grams)" => Field::Grams,
        "variant inventory qty" | "inventory quantity" => Field::Quantity,
        "variant inventory policy" => Field::Policy,
        "continue selling when out of stock" => Field::ContinueSelling,
        "variant price" | "price" => Field::Price,
        "variant compare at price" | "compare-at price" => Field::CompareAt,
        "image src" | "product image url" => Field::ImageSrc,
        "image position" => Field::ImagePosition,
        "image alt text" => Field::ImageAlt,
        _ => {
            let rest = h.strip_prefix("option")?;
            let n = usize::from(rest.as_bytes().first()?.checked_sub(b'1')?);
            if n > 2 {
                return None;
            }
            return match &rest[1..] {
                " name" => Some(Field::OptionName(n)),
                " value" => Some(Field::OptionValue(n)),
                _ => None,
            };
        }
    };
    Some(field)
}

/// One CSV record with its columns looked up by meaning.
struct Row<'a> {
    record: &'a csv::StringRecord,
    columns: &'a HashMap<Field, usize>,
}

impl Row<'_> {
    fn get(&self, field: Field) -> &str {
        self.columns
            .get(&field)
            .and_then(|&i| self.record.get(i))
            .map_or("", str::trim)
    }

    fn has(&self, field: Field) -> bool {
        !self.get(field).is_empty()
    }

    fn is_variant_row(&self) -> bool {
        (0..3).any(|i| self.has(Field::OptionValue(i)))
            || [Field::Sku, Field::Price, Field::CompareAt, Field::Quantity]
                .into_iter()
                .any(|f| self.has(f))
    }
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Some(true),
        "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

fn parse_count(text: &str, what: &str) -> Result<i64, String> {
    if text.is_empty() {
        return Ok(0);
    }
    let value: i64 = text
        .parse()
        .map_err(|_| format!("{what} '{text}' is not a whole number"))?;
    let mut errors = ValidationErrors::default();
    catalog::check_quantity(&mut errors, what, value);
    match errors.0.first() {
        Some(e) => Err(format!("{what} {}", e.message)),
        None => Ok(value),
    }
}

/// Reads a whole export. `currency` is the store's: prices are converted to its minor units.
pub fn parse(input: &[u8], currency: Currency) -> Result<ImportPlan, FileError> {
    let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(input);
    let headers = reader.headers().map_err(|e| csv_error(&e))?.clone();
    if headers.iter().all(|h| h.trim().is_empty()) {
        return Err(FileError::Empty);
    }
    let mut columns = HashMap::new();
    for (i, header) in headers.iter().enumerate() {
        if let Some(field) = field_for_header(header) {
            columns.entry(field).or_insert(i);
        }
    }
    if !columns.contains_key(&Field::Handle) {
        return Err(FileError::MissingColumn("Handle"));
    }

    let mut builders: Vec<ProductBuilder> = Vec::new();
    let mut by_handle: HashMap<String, usize> = HashMap::new();
    let mut rejected = Vec::new();
    let mut record = csv::StringRecord::new();
    let mut lines = LineCounter::default();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(csv_error(&e)),
        }
        let line = lines.line_at(input, record.position().map_or(0, csv::Position::byte));
        let row = Row {
            record: &record,
            columns: &columns,
        };
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let handle = row.get(Field::Handle);
        if handle.is_empty() {
            rejected.push(RowRejection {
                line,
                handle: None,
                reason: "the row has no handle".into(),
            });
            continue;
        }
        let index = *by_handle.entry(handle.to_owned()).or_insert_with(|| {
            builders.push(ProductBuilder::new(handle, line));
            builders.len() - 1
        });
        if let Some(builder) = builders.get_mut(index) {
            builder.add_row(&row, line, currency);
        }
    }

    let mut plan = ImportPlan {
        rejected,
        ..ImportPlan::default()
    };
    for builder in builders {
        match builder.finish() {
            Ok(product) => plan.products.push(product),
            Err(rows) => {
                plan.products_rejected += 1;
                plan.rejected.extend(rows);
            }
        }
    }
    plan.rejected.sort_by_key(|r| r.line);
    Ok(plan)
}

/// Line numbers as an editor shows them. The csv crate's own count is one short on
/// CRLF files (it can report a record's start before the `\n` of the previous `\r\n`),
/// so lines are counted here from byte offsets, incrementally.
#[derive(Default)]
struct LineCounter {
    byte: usize,
    line: u64,
}

impl LineCounter {
    fn line_at(&mut self, input: &[u8], record_start: u64) -> u64 {
        let mut start = usize::try_from(record_start).unwrap_or(usize::MAX).min(input.len());
        while matches!(input.get(start), Some(b'\r' | b'\n')) {
            start += 1;
        }
        if start < self.byte {
            self.byte = 0;
            self.line = 0;
        }
        let newlines = input[self.byte..start].iter().filter(|&&b| b == b'\n').count();
        self.line += u64::try_from(newlines).unwrap_or(0);
        self.byte = start;
        self.line + 1
    }
}

fn csv_error(error: &csv::Error) -> FileError {
    let line = error.position().map_or(0, csv::Position::line);
    match error.kind() {
        csv::ErrorKind::Utf8 { .. } => FileError::NotUtf8 { line },
        _ => FileError::Malformed {
            line,
            reason: error.to_string(),
        },
    }
}

struct ProductBuilder {
    product: ImportProduct,
    has_product_row: bool,
    errors: Vec<RowRejection>,
}

impl ProductBuilder {
    fn new(handle: &str, line: u64) -> Self {
        Self {
            product: ImportProduct {
                line,
                handle: handle.to_owned(),
                title: String::new(),
                description_html: String::new(),
                vendor: String::new(),
                product_type: String::new(),
                tags: Vec::new(),
                published: false,
                status: ProductStatus::Active,
                option_names: Default::default(),
                variants: Vec::new(),
                images: Vec::new(),
                lines: Vec::new(),
            },
            has_product_row: false,
            errors: Vec::new(),
        }
    }

    fn reject(&mut self, line: u64, reason: impl Into<String>) {
        self.errors.push(RowRejection {
            line,
            handle: Some(self.product.handle.clone()),
            reason: reason.into(),
        });
    }

    fn add_row(&mut self, row: &Row<'_>, line: u64, currency: Currency) {
        self.product.lines.push(line);
        if !self.has_product_row && row.has(Field::Title) {
            self.has_product_row = true;
            if let Err(reason) = self.read_product_fields(row) {
                self.reject(line, reason);
            }
        }
        if row.is_variant_row() {
            match read_variant(row, line, currency, &self.product.option_names) {
                Ok(variant) => {
                    if self.product.variants.iter().any(|v| v.options == variant.options) {
                        self.reject(line, "another row of this product has the same option values");
                    } else if let Some(sku) = variant
                        .sku
                        .as_ref()
                        .filter(|sku| self.product.variants.iter().any(|v| v.sku.as_ref() == Some(sku)))
                    {
                        let reason = format!("SKU '{sku}' is repeated within the product");
                        self.reject(line, reason);
                    } else {
                        self.product.variants.push(variant);
                    }
                }
                Err(reason) => self.reject(line, reason),
            }
        }
        if row.has(Field::ImageSrc)
            && let Err(reason) = self.add_image(row, line)
        {
            self.reject(line, reason);
        }
    }

    fn read_product_fields(&mut self, row: &Row<'_>) -> Result<(), String> {
        let p = &mut self.product;
        let mut errors = ValidationErrors::default();
        catalog::check_handle(&mut errors, "handle", &p.handle);
        p.title = row.get(Field::Title).to_owned();
        catalog::check_title(&mut errors, "title", &p.title);
        p.description_html = row.get(Field::Body).to_owned();
        catalog::check_text(&mut errors, "description", &p.description_html, catalog::MAX_TEXT_LEN);
        p.vendor = row.get(Field::Vendor).to_owned();
        catalog::check_text(&mut errors, "vendor", &p.vendor, catalog::MAX_SHORT_TEXT_LEN);
        p.product_type = row.get(Field::Type).to_owned();
        catalog::check_text(&mut errors, "type", &p.product_type, catalog::MAX_SHORT_TEXT_LEN);
        p.tags = catalog::split_tags(row.get(Field::Tags));
        catalog::check_tags(&mut errors, "tags", &p.tags);
        for (i, name) in p.option_names.iter_mut().enumerate() {
            *name = row.get(Field::OptionName(i)).to_owned();
            catalog::check_text(&mut errors, "option name", name, catalog::MAX_SHORT_TEXT_LEN);
        }
        if let Some(e) = errors.0.first() {
            return Err(format!("{} {}", e.field, e.message));
        }
        let published = row.get(Field::Published);
        // A blank "Published" leaves the product unpublished: nothing reaches the
        // storefront unless the merchant said so.
        p.published = if published.is_empty() {
            false
        } else {
            parse_bool(published).ok_or_else(|| format!("Published '{published}' is not true or false"))?
        };
        let status = row.get(Field::Status);
        if !status.is_empty() {
            p.status = status
                .parse()
                .map_err(|()| format!("Status '{status}' is not active, draft or archived"))?;
        }
        Ok(())
    }

    fn add_image(&mut self, row: &Row<'_>, line: u64) -> Result<(), String> {
        let src = row.get(Field::ImageSrc);
        if !(src.starts_with("https://") || src.starts_with("http://")) || src.len() > 2048 {
            return Err("image URL must be an http(s) URL of at most 2048 bytes".into());
        }
        if self.product.images.iter().any(|i| i.src == src) {
            return Ok(()); // The same picture named twice (e.g. product and variant image).
        }
        let position_text = row.get(Field::ImagePosition);
        let position = if position_text.is_empty() {
            i64::try_from(self.product.images.len())
                .unwrap_or(i64::MAX)
                .saturating_add(1)
        } else {
            match position_text.parse::<i64>() {
                Ok(p) if (1..=10_000).contains(&p) => p,
                _ => {
                    return Err(format!("Image Position '{position_text}' is not a number from 1"));
                }
            }
        };
        let alt_text = row.get(Field::ImageAlt).to_owned();
        if alt_text.len() > 512 {
            return Err("image alt text must be at most 512 bytes".into());
        }
        self.product.images.push(ImportImage {
            line,
            src: src.to_owned(),
            position,
            alt_text,
        });
        Ok(())
    }

    fn finish(mut self) -> Result<ImportProduct, Vec<RowRejection>> {
        if !self.has_product_row {
            let line = self.product.line;
            self.reject(line, "the product's first row has no title");
        }
        if self.errors.is_empty() {
            Ok(self.product)
        } else {
            Err(self.errors)
        }
    }
}

fn read_variant(
    row: &Row<'_>,
    line: u64,
    currency: Currency,
    option_names: &[String; 3],
) -> Result<ImportVariant, String> {
    let mut options: [String; 3] = Default::default();
    for (i, value) in options.iter_mut().enumerate() {
        *value = row.get(Field::OptionValue(i)).to_owned();
        if value.len() > catalog::MAX_SHORT_TEXT_LEN {
            return Err(format!("Option{} value is longer than 255 bytes", i + 1));
        }
    }
    if options[0].is_empty() && option_names[0].is_empty() {
        // Shopify's own spelling of "this product has no options".
        options[0] = "Default Title".to_owned();
    }
    let price_text = row.get(Field::Price);
    if price_text.is_empty() {
        return Err("the variant has no price".into());
    }
    let price = parse_amount(price_text, currency).map_err(|e| format!("price '{price_text}': {e}"))?;
    let compare_text = row.get(Field::CompareAt);
    let compare_at_price = if compare_text.is_empty() {
        None
    } else {
        Some(parse_amount(compare_text, currency).map_err(|e| format!("compare-at price '{compare_text}': {e}"))?)
    };
    let inventory_policy = match (row.get(Field::Policy), row.get(Field::ContinueSelling)) {
        ("", "") => InventoryPolicy::Deny,
        ("", continue_selling) => match parse_bool(continue_selling) {
            Some(true) => InventoryPolicy::Continue,
            Some(false) => InventoryPolicy::Deny,
            None => {
                return Err(format!(
                    "'Continue selling when out of stock' value '{continue_selling}' is not true or false"
                ));
            }
        },
        (policy, _) => policy
            .parse()
            .map_err(|()| format!("inventory policy '{policy}' is not deny or continue"))?,
    };
    let sku = Some(row.get(Field::Sku).to_owned()).filter(|s| !s.is_empty());
    if sku.as_ref().is_some_and(|s| s.len() > catalog::MAX_SHORT_TEXT_LEN) {
        return Err("SKU is longer than 255 bytes".into());
    }
    Ok(ImportVariant {
        line,
        options,
        sku,
        grams: parse_count(row.get(Field::Grams), "weight in grams")?,
        inventory_quantity: parse_count(row.get(Field::Quantity), "inventory quantity")?,
        inventory_policy,
        price,
        compare_at_price,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd() -> Currency {
        "USD".parse().unwrap_or_else(|_| unreachable!())
    }

    fn plan(text: &str) -> ImportPlan {
        parse(text.as_bytes(), usd()).unwrap_or_else(|e| panic!("{e}"))
    }

    const CLASSIC: &str = "Handle,Title,Body (HTML),Vendor,Tags,Published,Option1 Name,Option1 Value,Variant SKU,Variant Inventory Qty,Variant Inventory Policy,Variant Price,Variant Compare At Price,Image Src,Image Position,Image Alt Text,Status\n";

    #[test]
    fn consecutive_rows_form_one_product_with_variants_and_images() {
        let p = plan(&format!(
            "{CLASSIC}top,Top,\"<p>Soft, warm</p>\",Acme,\"a, b\",true,Size,Small,TOP-S,3,deny,42.99,55,https://x.test/1.jpg,1,front,active\n\
             top,,,,,,,Medium,TOP-M,0,continue,42.99,,,,,\n\
             top,,,,,,,,,,,,,https://x.test/2.jpg,2,back,\n"
        ));
        assert!(p.rejected.is_empty(), "{:?}", p.rejected);
        let [product] = p.products.as_slice() else {
            panic!("one product")
        };
        assert_eq!(product.title, "Top");
        assert_eq!(product.description_html, "<p>Soft, warm</p>");
        assert_eq!(product.tags, vec!["a", "b"]);
        assert!(product.published);
        assert_eq!(product.variants.len(), 2);
        assert_eq!(product.variants[0].price, 4299);
        assert_eq!(product.variants[0].compare_at_price, Some(5500));
        assert_eq!(product.variants[0].inventory_quantity, 3);
        assert_eq!(product.variants[1].inventory_policy, InventoryPolicy::Continue);
        assert_eq!(product.images.len(), 2);
        assert_eq!(product.images[1].alt_text, "back");
    }

    #[test]
    fn the_2025_vocabulary_reads_the_same() {
        let p = plan(
            "\u{feff}Title,URL handle,Description,Vendor,SKU,Option1 name,Option1 value,Price,Compare-at price,Inventory quantity,Continue selling when out of stock,Product image URL,Image position,Published on online store,Status\r\n\
             Lamp,lamp,\"multi\nline\",Acme,L-1,Color,Red,10,12.50,7,TRUE,https://x.test/l.jpg,1,TRUE,Active\r\n\
             ,lamp,,,L-2,,Blue,11,,0,FALSE,,,,\r\n",
        );
        assert!(p.rejected.is_empty(), "{:?}", p.rejected);
        let [product] = p.products.as_slice() else {
            panic!("one product")
        };
        assert_eq!(product.handle, "lamp");
        assert_eq!(product.description_html, "multi\nline");
        assert_eq!(product.option_names[0], "Color");
        assert_eq!(product.variants[0].compare_at_price, Some(1250));
        assert_eq!(product.variants[0].inventory_policy, InventoryPolicy::Continue);
        assert_eq!(product.variants[1].options[0], "Blue");
        assert_eq!(product.variants[1].inventory_policy, InventoryPolicy::Deny);
        assert_eq!(product.images.len(), 1);
    }

    #[test]
    fn a_bad_row_rejects_its_whole_product_and_names_the_line() {
        let p = plan(&format!(
            "{CLASSIC}good,Good,,,,true,Title,Default Title,,1,deny,5,,,,,\n\
             bad,Bad,,,,true,Size,S,,1,deny,12.99,,,,,\n\
             bad,,,,,,,M,,1,deny,\"12,99\",,,,,\n\
             neg,Neg,,,,true,Title,Default Title,,-4,deny,1,,,,,\n\
             ,Orphan,,,,true,,,,,,1,,,,,\n"
        ));
        assert_eq!(p.products.len(), 1);
        assert_eq!(p.products_rejected, 2);
        let lines: Vec<u64> = p.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![4, 5, 6]);
        assert!(p.rejected[0].reason.contains("12,99"), "{}", p.rejected[0].reason);
        assert!(p.rejected[1].reason.contains("negative"), "{}", p.rejected[1].reason);
        assert!(p.rejected[2].reason.contains("no handle"));
    }

    #[test]
    fn a_file_without_a_handle_column_is_refused() {
        assert_eq!(
            parse(b"Title,Variant Price\nA,1\n", usd()),
            Err(FileError::MissingColumn("Handle"))
        );
        assert_eq!(parse(b"", usd()), Err(FileError::Empty));
    }

    #[test]
    fn line_numbers_are_right_with_crlf_and_multiline_fields() {
        for eol in ["\n", "\r\n"] {
            let text = format!("Handle,Title,Variant Price{eol}a,\"two{eol}lines\",1{eol}b,B,x{eol}{eol}c,C,-1{eol}");
            let p = plan(&text);
            let lines: Vec<u64> = p.rejected.iter().map(|r| r.line).collect();
            assert_eq!(lines, vec![4, 6], "{eol:?}: {:?}", p.rejected);
        }
    }

    #[test]
    fn duplicate_options_within_a_product_are_refused() {
        let p = plan(&format!(
            "{CLASSIC}t,T,,,,true,Size,S,,1,deny,5,,,,,\nt,,,,,,,S,,1,deny,5,,,,,\n"
        ));
        assert!(p.products.is_empty());
        assert_eq!(p.rejected[0].line, 3);
    }
}
