//! Shopify CSV import through the API, with the two real sample catalogs.

#![expect(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

pub mod common;

use axum::http::{Method, StatusCode};
use common::Harness;
use serde_json::Value;
use stormcom_store::Db;

stormcom_testkit::backend_tests!(
    both_sample_catalogs_import_exactly_into_their_own_stores,
    reimporting_changes_nothing,
    bad_rows_are_reported_and_never_half_imported,
    an_unreadable_file_imports_nothing,
    a_conflict_midway_rolls_back_only_that_product,
);

const APPAREL: &[u8] = include_bytes!("../../../fixtures/shopify/apparel.csv");
const HOME: &[u8] = include_bytes!("../../../fixtures/shopify/home-and-garden.csv");

fn product<'a>(page: &'a Value, handle: &str) -> &'a Value {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["handle"] == handle)
        .unwrap_or_else(|| panic!("{handle} missing"))
}

fn count(page: &Value, f: impl Fn(&Value) -> usize) -> usize {
    page["data"].as_array().unwrap().iter().map(f).sum()
}

async fn both_sample_catalogs_import_exactly_into_their_own_stores(db: Db) {
    let h = Harness::new(db);
    let apparel = h.owner("apparel").await;
    let home = h.owner("home").await;

    let summary = h
        .post_csv(
            &format!("/v1/stores/{}/imports/shopify", apparel.store_id),
            &apparel.token,
            APPAREL,
        )
        .await;
    assert_eq!(summary.status, StatusCode::OK, "{}", summary.text);
    assert_eq!(summary.body["products_created"], 20);
    assert_eq!(summary.body["variants_created"], 22);
    assert_eq!(summary.body["images_created"], 20);
    assert_eq!(summary.body["rows_rejected"].as_array().unwrap().len(), 0);
    let summary = h
        .post_csv(
            &format!("/v1/stores/{}/imports/shopify", home.store_id),
            &home.token,
            HOME,
        )
        .await;
    assert_eq!(summary.status, StatusCode::OK, "{}", summary.text);
    assert_eq!(
        (
            summary.body["products_created"].as_u64(),
            summary.body["variants_created"].as_u64()
        ),
        (Some(20), Some(21))
    );
    assert_eq!(summary.body["images_created"], 21);

    let page = h
        .get(
            &format!("/v1/stores/{}/products?limit=100", apparel.store_id),
            &apparel.token,
        )
        .await
        .body;
    assert_eq!(page["data"].as_array().unwrap().len(), 20);
    assert_eq!(count(&page, |p| p["variants"].as_array().unwrap().len()), 22);
    let varsity = product(&page, "classic-varsity-top");
    let sizes: Vec<(&str, i64)> = varsity["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["title"].as_str().unwrap(), v["price"].as_i64().unwrap()))
        .collect();
    assert_eq!(sizes, vec![("Small", 6000), ("Medium", 6000), ("Large", 6000)]);
    assert_eq!(varsity["options"], serde_json::json!(["Size"]));
    assert_eq!(varsity["vendor"], "partners-demo");
    assert_eq!(varsity["variants"][0]["inventory"]["on_hand"], 1);
    assert_eq!(
        product(&page, "ocean-blue-shirt")["variants"][0]["title"],
        "Default Title"
    );

    let page = h
        .get(&format!("/v1/stores/{}/products?limit=100", home.store_id), &home.token)
        .await
        .body;
    let pot = product(&page, "clay-plant-pot");
    let pot_variants: Vec<(&str, i64, i64)> = pot["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["title"].as_str().unwrap(),
                v["price"].as_i64().unwrap(),
                v["inventory"]["on_hand"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(pot_variants, vec![("Regular", 999, 1), ("Large", 1599, 3)]);
    assert_eq!(pot["images"].as_array().unwrap().len(), 2);
    assert_eq!(pot["tags"], serde_json::json!(["Pot", "Plants"]));
    assert_eq!(product(&page, "copper-light")["variants"][0]["compare_at_price"], 7500);
    assert_eq!(product(&page, "cream-sofa")["variants"][0]["price"], 50000);
    assert_eq!(
        count(&page, |p| p["variants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["inventory"]["on_hand"].as_u64().unwrap() as usize)
            .sum()),
        65
    );

    // Each catalog is only in its own store, admin side and storefront side.
    let foreign = h
        .get(&format!("/v1/stores/{}/products", home.store_id), &apparel.token)
        .await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
    let storefront = h
        .call(Method::GET, "/v1/storefront/apparel/products?limit=100", None, None)
        .await;
    assert_eq!(storefront.body["data"].as_array().unwrap().len(), 20);
    h.call(
        Method::GET,
        "/v1/storefront/apparel/products/clay-plant-pot",
        None,
        None,
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
    let pot = h
        .call(Method::GET, "/v1/storefront/home/products/clay-plant-pot", None, None)
        .await;
    assert_eq!(pot.body["variants"][1]["price"], 1599);
}

async fn reimporting_changes_nothing(db: Db) {
    let h = Harness::new(db);
    let o = h.owner("home").await;
    let path = format!("/v1/stores/{}/imports/shopify", o.store_id);
    assert_eq!(h.post_csv(&path, &o.token, HOME).await.status, StatusCode::OK);
    let before = h.snapshot(&o).await;
    let again = h.post_csv(&path, &o.token, HOME).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(
        (
            again.body["products_created"].as_u64(),
            again.body["products_updated"].as_u64(),
            again.body["products_unchanged"].as_u64()
        ),
        (Some(0), Some(0), Some(20))
    );
    assert_eq!(
        (
            again.body["variants_created"].as_u64(),
            again.body["images_created"].as_u64()
        ),
        (Some(0), Some(0))
    );
    assert_eq!(
        h.snapshot(&o).await,
        before,
        "same file, same state: no duplicates, no new ledger rows"
    );

    // A changed price and quantity update in place, through the ledger.
    let edited = String::from_utf8(HOME.to_vec())
        .unwrap()
        .replace(",manual,15.99,,true", ",manual,17.49,,true")
        .replace(",3,deny,manual,17.49", ",7,deny,manual,17.49");
    let summary = h.post_csv(&path, &o.token, edited.as_bytes()).await;
    assert_eq!(
        (
            summary.body["variants_updated"].as_u64(),
            summary.body["products_created"].as_u64()
        ),
        (Some(1), Some(0)),
        "{}",
        summary.text
    );
    let page = h
        .get(&format!("/v1/stores/{}/products?limit=100", o.store_id), &o.token)
        .await
        .body;
    let large = &product(&page, "clay-plant-pot")["variants"][1];
    assert_eq!(
        (large["price"].as_i64(), large["inventory"]["on_hand"].as_i64()),
        (Some(1749), Some(7))
    );
    let ledger = h
        .get(
            &format!(
                "/v1/stores/{}/inventory/{}/movements",
                o.store_id,
                large["id"].as_str().unwrap()
            ),
            &o.token,
        )
        .await;
    let deltas: Vec<(i64, &str)> = ledger.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["delta"].as_i64().unwrap(), m["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(deltas, vec![(3, "initial"), (4, "import")]);
}

async fn bad_rows_are_reported_and_never_half_imported(db: Db) {
    let h = Harness::new(db);
    let o = h.owner("shop").await;
    let csv = "\u{feff}Handle,Title,Option1 Name,Option1 Value,Variant Price,Variant Inventory Qty,Image Src,Published\r\n\
               good,Good,Size,S,10,1,https://img.example/good.jpg,true\r\n\
               good,,,M,11,1,,\r\n\
               split,Split,Size,S,10,1,,true\r\n\
               split,,,M,\"12,99\",1,,\r\n\
               negative,Negative,Title,Default Title,5,-3,,true\r\n\
               ,Orphan,Title,Default Title,5,1,,true\r\n\
               quoted,\"Quoted, with \"\"comma\"\"\nand newline\",Title,Default Title,42.99,2,,true\r\n";
    let summary = h
        .post_csv(
            &format!("/v1/stores/{}/imports/shopify", o.store_id),
            &o.token,
            csv.as_bytes(),
        )
        .await;
    assert_eq!(summary.status, StatusCode::OK, "{}", summary.text);
    assert_eq!(summary.body["products_created"], 2);
    assert_eq!(summary.body["products_rejected"], 2);
    let rejected: Vec<(u64, &str)> = summary.body["rows_rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["line"].as_u64().unwrap(), r["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        rejected.iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![5, 6, 7],
        "{rejected:?}"
    );
    assert!(rejected[0].1.contains("12,99"), "{rejected:?}");
    assert!(rejected[1].1.contains("negative"), "{rejected:?}");
    assert!(rejected[2].1.contains("no handle"), "{rejected:?}");

    let page = h
        .get(&format!("/v1/stores/{}/products?limit=100", o.store_id), &o.token)
        .await
        .body;
    let handles: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["handle"].as_str().unwrap())
        .collect();
    assert_eq!(handles, vec!["good", "quoted"], "the split product left nothing behind");
    assert_eq!(product(&page, "quoted")["title"], "Quoted, with \"comma\"\nand newline");
    assert_eq!(product(&page, "quoted")["variants"][0]["price"], 4299);
}

async fn an_unreadable_file_imports_nothing(db: Db) {
    let h = Harness::new(db);
    let o = h.owner("shop").await;
    let path = format!("/v1/stores/{}/imports/shopify", o.store_id);
    let no_handle = h.post_csv(&path, &o.token, b"Title,Variant Price\nShirt,10\n").await;
    no_handle.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_import_file");
    assert!(no_handle.body["detail"].as_str().unwrap().contains("Handle"));
    h.post_csv(&path, &o.token, b"")
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_import_file");
    h.post_csv(&path, &o.token, b"Handle,Title\n\xff\xfe,bad\n")
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_import_file");
    let json_instead = h.post(&path, &o.token, serde_json::json!({"csv": "Handle"})).await;
    json_instead.assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    let page = h.get(&format!("/v1/stores/{}/products", o.store_id), &o.token).await;
    assert_eq!(page.body["data"].as_array().unwrap().len(), 0);
}

async fn a_conflict_midway_rolls_back_only_that_product(db: Db) {
    let h = Harness::new(db);
    let o = h.owner("shop").await;
    let taken =
        serde_json::json!({"handle": "existing", "title": "Existing", "variants": [{"price": 1, "sku": "TAKEN"}]});
    assert_eq!(
        h.post(&format!("/v1/stores/{}/products", o.store_id), &o.token, taken)
            .await
            .status,
        StatusCode::CREATED
    );
    let csv = "Handle,Title,Option1 Name,Option1 Value,Variant SKU,Variant Price,Variant Inventory Qty,Image Src\n\
               before,Before,Title,Default Title,B-1,1,1,\n\
               clash,Clash,Size,S,C-S,1,5,https://img.example/clash.jpg\n\
               clash,,,M,TAKEN,1,5,\n\
               after,After,Title,Default Title,A-1,1,1,\n";
    let summary = h
        .post_csv(
            &format!("/v1/stores/{}/imports/shopify", o.store_id),
            &o.token,
            csv.as_bytes(),
        )
        .await;
    assert_eq!(summary.status, StatusCode::OK, "{}", summary.text);
    assert_eq!(
        (
            summary.body["products_created"].as_u64(),
            summary.body["products_rejected"].as_u64()
        ),
        (Some(2), Some(1))
    );
    assert_eq!(summary.body["rows_rejected"][0]["line"], 4);
    assert!(
        summary.body["rows_rejected"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("TAKEN")
    );
    let page = h
        .get(&format!("/v1/stores/{}/products?limit=100", o.store_id), &o.token)
        .await
        .body;
    let handles: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["handle"].as_str().unwrap())
        .collect();
    assert_eq!(
        handles,
        vec!["existing", "before", "after"],
        "no trace of the clashing product, not even its first variant"
    );
    // Its stock never reached the ledger either: only the three surviving variants have movements.
    let variants: usize = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["variants"].as_array().unwrap().len())
        .sum();
    assert_eq!(variants, 3);
}
