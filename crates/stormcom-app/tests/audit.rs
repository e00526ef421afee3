//! The hash-chained audit log catches tampering by someone with direct database access,
//! written once and run on SQLite and PostgreSQL. Each test builds a store whose chain
//! holds `SETUP_ENTRIES` entries made by the app, tampers with the rows through raw SQL
//! (after switching off the append-only triggers, as an attacker with DB rights would),
//! and checks the exact seq and reason `App::verify_chain` reports.

#![expect(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

use stormcom_app::audit::Verification;
use stormcom_app::catalog::{NewProduct, NewVariant};
use stormcom_app::{App, AppConfig, Keys, StoreContext};
use stormcom_domain::VariantId;
use stormcom_domain::audit::{BreakReason, ChainBreak, ChainVerifier, Hash, StoredEntry, chain_hash, check_head};
use stormcom_store::Db;
use stormcom_store::audit as store_audit;
use tokio::task::JoinSet;
use uuid::Uuid;

stormcom_testkit::backend_tests!(
    the_database_refuses_to_change_audit_rows,
    an_edited_field_is_caught_at_its_seq,
    a_deleted_entry_is_caught,
    swapped_entries_are_caught,
    a_forged_entry_is_caught,
    a_truncated_tail_is_caught,
    a_rewritten_table_is_caught_by_the_signed_checkpoint,
    concurrent_appends_keep_one_unbroken_chain,
);

const OWNER: &str = "owner@example.test";

/// Adjustments made by [`shop`] after creating its product.
const SETUP_ADJUSTMENTS: i64 = 9;
/// `store.created` + `product.created` + the adjustments.
const SETUP_ENTRIES: i64 = 2 + SETUP_ADJUSTMENTS;
/// Stock the product is created with.
const INITIAL_STOCK: i64 = 1_000;

/// A store with an audited history of `SETUP_ENTRIES` entries.
struct Shop {
    chain: Uuid,
    ctx: StoreContext,
    variant: VariantId,
}

/// The app over `db`, with the user who owns every store of the test.
async fn app(db: &Db) -> App {
    // One owner holds many stores here; plan quotas are tested in the HTTP suite.
    let config = AppConfig {
        plans: stormcom_domain::PlanTable::unlimited(),
        ..AppConfig::default()
    };
    let app = App::new(db.clone(), config, Keys::generate().unwrap());
    app.create_user(OWNER, "long enough password").await.unwrap();
    app
}

async fn shop(app: &App, handle: &str) -> Shop {
    let store = app.create_store("Shop", handle, "USD", OWNER).await.unwrap();
    let ctx = StoreContext::operator(store.scope(), "USD".parse().unwrap());
    let product = app
        .create_product(
            &ctx,
            NewProduct {
                handle: "tee".into(),
                title: "Tee".into(),
                variants: vec![NewVariant {
                    price: 100,
                    inventory_quantity: INITIAL_STOCK,
                    ..Default::default()
                }],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let variant = product.variants[0].id;
    for i in 0..SETUP_ADJUSTMENTS {
        let delta = if i % 2 == 0 { 3 } else { -1 };
        app.adjust_inventory(&ctx, variant, delta, "count").await.unwrap();
    }
    let shop = Shop {
        chain: store.id.as_uuid(),
        ctx,
        variant,
    };
    assert_intact(app, shop.chain, SETUP_ENTRIES).await;
    shop
}

async fn verify(app: &App, chain: Uuid) -> Verification {
    app.verify_chain(chain, None, &|_, _| {}).await.unwrap()
}

async fn assert_intact(app: &App, chain: Uuid, entries: i64) {
    let report = verify(app, chain).await;
    assert_eq!(report.failure, None, "chain {chain} should verify");
    assert_eq!(report.entries_verified, u64::try_from(entries).unwrap());
}

/// Verifies the tampered chain and checks the first break, and that the platform chain
/// (and so other chains) is unaffected.
async fn assert_broken(app: &App, chain: Uuid, seq: i64, reason: BreakReason) {
    let report = verify(app, chain).await;
    assert_eq!(report.chain, chain);
    assert_eq!(report.failure, Some(ChainBreak { seq, reason }), "{report:?}");
    let platform = verify(app, Uuid::nil()).await;
    assert_eq!(platform.failure, None, "the platform chain was not touched");
}

async fn read_all(db: &Db, chain: Uuid) -> Vec<StoredEntry> {
    let mut reader = db.reader().await.unwrap();
    store_audit::entries(&mut reader, chain, 0, 1_000_000).await.unwrap()
}

fn hash_of(entry: &StoredEntry) -> Hash {
    entry.hash.clone().try_into().unwrap()
}

fn is_sqlite(db: &Db) -> bool {
    match db.backend_name() {
        "sqlite" => true,
        "postgres" => false,
        other => panic!("unknown backend {other}"),
    }
}

/// SQL literal for a BLOB / bytea value.
fn bytes_lit(db: &Db, bytes: &[u8]) -> String {
    if is_sqlite(db) {
        format!("x'{}'", hex::encode(bytes))
    } else {
        format!("decode('{}', 'hex')", hex::encode(bytes))
    }
}

/// SQL literal for a uuid column (a 16-byte BLOB on SQLite).
fn uuid_lit(db: &Db, id: Uuid) -> String {
    if is_sqlite(db) {
        bytes_lit(db, id.as_bytes())
    } else {
        format!("'{id}'::uuid")
    }
}

/// `WHERE` condition for one entry of a chain.
fn entry_at(db: &Db, chain: Uuid, seq: i64) -> String {
    format!("chain_id = {} AND seq = {seq}", uuid_lit(db, chain))
}

/// Runs `sql` as an attacker with database rights: the append-only triggers are switched
/// off first, in the same transaction.
async fn tamper(db: &Db, sql: &str) {
    let unlock = if is_sqlite(db) {
        "DROP TRIGGER IF EXISTS audit_log_no_update; DROP TRIGGER IF EXISTS audit_log_no_delete;"
    } else {
        "ALTER TABLE audit_log DISABLE TRIGGER USER;"
    };
    db.execute_admin(&format!("{unlock} {sql}")).await.unwrap();
}

async fn the_database_refuses_to_change_audit_rows(db: Db) {
    let app = app(&db).await;
    let shop = shop(&app, "shop").await;
    app.checkpoint_all().await.unwrap();
    let chain = uuid_lit(&db, shop.chain);
    let mut attempts = vec![
        format!(
            "UPDATE audit_log SET action = 'refund.approved' WHERE {}",
            entry_at(&db, shop.chain, 5)
        ),
        format!("UPDATE audit_log SET seq = seq + 100 WHERE chain_id = {chain}"),
        format!("DELETE FROM audit_log WHERE {}", entry_at(&db, shop.chain, 5)),
        format!("DELETE FROM audit_log WHERE chain_id = {chain} AND seq > 9"),
        "DELETE FROM audit_log".to_owned(),
        format!("UPDATE audit_checkpoints SET seq = 1 WHERE chain_id = {chain}"),
        "DELETE FROM audit_checkpoints".to_owned(),
    ];
    if !is_sqlite(&db) {
        attempts.push("TRUNCATE audit_log".to_owned());
        attempts.push("TRUNCATE audit_checkpoints".to_owned());
    }
    for sql in &attempts {
        let err = db.execute_admin(sql).await.unwrap_err();
        assert!(err.to_string().contains("append_only"), "{sql}: {err}");
    }
    let entries = read_all(&db, shop.chain).await;
    assert_eq!(
        entries.iter().map(|e| e.record.seq).collect::<Vec<_>>(),
        (1..=SETUP_ENTRIES).collect::<Vec<_>>()
    );
    let report = verify(&app, shop.chain).await;
    assert_eq!(report.failure, None);
    assert_eq!(report.entries_verified, u64::try_from(SETUP_ENTRIES).unwrap());
    assert_eq!(report.checkpoints_checked, 1);
}

async fn an_edited_field_is_caught_at_its_seq(db: Db) {
    let app = app(&db).await;
    let edits = [
        "action = 'refund.approved'",
        "summary = '{\"delta\":\"300\"}'",
        "actor = 'someone-else'",
        "actor_ip = '198.51.100.7'",
        "target = 'another-variant'",
    ];
    for (i, edit) in edits.iter().enumerate() {
        let shop = shop(&app, &format!("shop{i}")).await;
        tamper(
            &db,
            &format!("UPDATE audit_log SET {edit} WHERE {}", entry_at(&db, shop.chain, 5)),
        )
        .await;
        assert_broken(&app, shop.chain, 5, BreakReason::HashMismatch).await;
    }
}

async fn a_deleted_entry_is_caught(db: Db) {
    let app = app(&db).await;
    let shop = shop(&app, "shop").await;
    tamper(
        &db,
        &format!("DELETE FROM audit_log WHERE {}", entry_at(&db, shop.chain, 5)),
    )
    .await;
    assert_broken(&app, shop.chain, 6, BreakReason::Gap { expected: 5 }).await;
}

async fn swapped_entries_are_caught(db: Db) {
    let app = app(&db).await;
    let shop = shop(&app, "shop").await;
    let before = read_all(&db, shop.chain).await;
    // Rows 4 and 5 trade places: each keeps its content and hashes, the seqs stay in order.
    let chain = uuid_lit(&db, shop.chain);
    tamper(
        &db,
        &format!(
            "UPDATE audit_log SET seq = -4 WHERE chain_id = {chain} AND seq = 4; \
             UPDATE audit_log SET seq = 4 WHERE chain_id = {chain} AND seq = 5; \
             UPDATE audit_log SET seq = 5 WHERE chain_id = {chain} AND seq = -4;"
        ),
    )
    .await;
    let after = read_all(&db, shop.chain).await;
    assert_eq!(after[3].hash, before[4].hash);
    assert_eq!(after[4].hash, before[3].hash);
    assert_broken(&app, shop.chain, 4, BreakReason::PrevHashMismatch).await;
}

/// Moves entries 6.. up by one (through negative seqs, so no row collides with the
/// primary key on the way) and inserts a copy of the entry now at `source_seq`, with
/// another action, as seq 6. The head row is bumped too, as a careful attacker would.
async fn forge_at_6(db: &Db, chain: Uuid, source_seq: i64) {
    let chain_lit = uuid_lit(db, chain);
    tamper(
        db,
        &format!(
            "UPDATE audit_log SET seq = -seq - 1 WHERE chain_id = {chain_lit} AND seq >= 6; \
             UPDATE audit_log SET seq = -seq WHERE chain_id = {chain_lit} AND seq < 0; \
             INSERT INTO audit_log (chain_id, seq, prev_hash, hash, at, actor, actor_ip, action, target, summary) \
                 SELECT chain_id, 6, prev_hash, hash, at, actor, actor_ip, 'refund.approved', target, summary \
                 FROM audit_log WHERE {}; \
             UPDATE audit_heads SET seq = seq + 1 WHERE chain_id = {chain_lit};",
            entry_at(db, chain, source_seq)
        ),
    )
    .await;
    let seqs: Vec<i64> = read_all(db, chain).await.iter().map(|e| e.record.seq).collect();
    assert_eq!(seqs, (1..=SETUP_ENTRIES + 1).collect::<Vec<_>>());
}

async fn a_forged_entry_is_caught(db: Db) {
    let app = app(&db).await;
    // A copy of entry 5: it links to entry 4, not to 5.
    let crude = shop(&app, "crude").await;
    forge_at_6(&db, crude.chain, 5).await;
    assert_broken(&app, crude.chain, 6, BreakReason::PrevHashMismatch).await;
    // A copy of the genuine entry 6 (now at 7): it links to 5, but its hash no longer
    // matches its content.
    let careful = shop(&app, "careful").await;
    forge_at_6(&db, careful.chain, 7).await;
    assert_broken(&app, careful.chain, 6, BreakReason::HashMismatch).await;
}

async fn a_truncated_tail_is_caught(db: Db) {
    let app = app(&db).await;
    let shop = shop(&app, "shop").await;
    tamper(
        &db,
        &format!(
            "DELETE FROM audit_log WHERE chain_id = {} AND seq > {}",
            uuid_lit(&db, shop.chain),
            SETUP_ENTRIES - 2
        ),
    )
    .await;
    assert_eq!(
        read_all(&db, shop.chain).await.last().unwrap().record.seq,
        SETUP_ENTRIES - 2
    );
    assert_broken(
        &app,
        shop.chain,
        SETUP_ENTRIES - 1,
        BreakReason::Truncated {
            head_seq: SETUP_ENTRIES,
        },
    )
    .await;
}

async fn a_rewritten_table_is_caught_by_the_signed_checkpoint(db: Db) {
    let app = app(&db).await;
    let shop = shop(&app, "shop").await;
    let signed = app.checkpoint_all().await.unwrap();
    let ours: Vec<_> = signed.iter().filter(|c| c.chain == shop.chain).collect();
    assert_eq!(ours.len(), 1);
    assert_eq!(ours[0].seq, SETUP_ENTRIES);
    let exported = app.all_checkpoints().await.unwrap();

    // Rewrite entry 3 and recompute every hash from there on, and the head row, so that
    // every link is consistent again.
    let original = read_all(&db, shop.chain).await;
    let mut prev = hash_of(&original[1]);
    let mut sql = String::new();
    for entry in &original[2..] {
        let mut record = entry.record.clone();
        if record.seq == 3 {
            assert_eq!(record.action, "inventory.adjusted");
            record.action = "refund.approved".to_owned();
        }
        let hash = chain_hash(&prev, &record);
        sql += &format!(
            "UPDATE audit_log SET action = '{}', prev_hash = {}, hash = {} WHERE {}; ",
            record.action,
            bytes_lit(&db, &prev),
            bytes_lit(&db, &hash),
            entry_at(&db, shop.chain, record.seq)
        );
        prev = hash;
    }
    sql += &format!(
        "UPDATE audit_heads SET hash = {} WHERE chain_id = {};",
        bytes_lit(&db, &prev),
        uuid_lit(&db, shop.chain)
    );
    tamper(&db, &sql).await;

    // The chain alone, and its head row, are consistent.
    let rewritten = read_all(&db, shop.chain).await;
    assert_eq!(rewritten.len(), original.len());
    assert_eq!(rewritten[2].record.action, "refund.approved");
    assert_ne!(rewritten[2].hash, original[2].hash);
    let mut verifier = ChainVerifier::new(shop.chain);
    for entry in &rewritten {
        verifier.push(entry).unwrap();
    }
    let (head_seq, head_hash) = store_audit::head(&mut db.reader().await.unwrap(), shop.chain)
        .await
        .unwrap()
        .unwrap();
    check_head(&verifier, head_seq, &head_hash).unwrap();
    verifier.finish().unwrap();
    let unpinned = app
        .verify_chain(shop.chain, Some(Vec::new()), &|_, _| {})
        .await
        .unwrap();
    assert_eq!(unpinned.failure, None);
    assert_eq!(unpinned.checkpoints_checked, 0);

    // The signed checkpoint over the original head pins the rewrite, whether read from
    // the database or from an export taken before.
    let expected = Some(ChainBreak {
        seq: SETUP_ENTRIES,
        reason: BreakReason::CheckpointMismatch {
            checkpoint_seq: SETUP_ENTRIES,
        },
    });
    let report = verify(&app, shop.chain).await;
    assert_eq!(report.checkpoints_checked, 1);
    assert_eq!(report.failure, expected);
    let report = app.verify_chain(shop.chain, Some(exported), &|_, _| {}).await.unwrap();
    assert_eq!(report.checkpoints_checked, 1);
    assert_eq!(report.failure, expected);
    assert_eq!(verify(&app, Uuid::nil()).await.failure, None);
}

async fn concurrent_appends_keep_one_unbroken_chain(db: Db) {
    const TASKS: i64 = 8;
    const PER_TASK: i64 = 200;
    let app = app(&db).await;
    let shop = shop(&app, "shop").await;
    let before = app.inventory_level(&shop.ctx, shop.variant).await.unwrap().on_hand;

    let mut tasks = JoinSet::new();
    for _ in 0..TASKS {
        let app = app.clone();
        let (ctx, variant) = (shop.ctx, shop.variant);
        tasks.spawn(async move {
            for _ in 0..PER_TASK {
                app.adjust_inventory(&ctx, variant, 1, "restock").await.unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }

    let total = SETUP_ENTRIES + TASKS * PER_TASK;
    assert_intact(&app, shop.chain, total).await;
    let entries = read_all(&db, shop.chain).await;
    assert_eq!(
        entries.iter().map(|e| e.record.seq).collect::<Vec<_>>(),
        (1..=total).collect::<Vec<_>>()
    );
    let (head_seq, head_hash) = store_audit::head(&mut db.reader().await.unwrap(), shop.chain)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(head_seq, total);
    assert_eq!(head_hash, entries.last().unwrap().hash);
    let after = app.inventory_level(&shop.ctx, shop.variant).await.unwrap().on_hand;
    assert_eq!(after, before + TASKS * PER_TASK);
}
