//! `stormcom payments …`: the built-in `test` gateway, for development and demos.

use anyhow::{Context, bail};
use clap::{Subcommand, ValueEnum};
use stormcom_app::App;
use stormcom_app::payments::Simulated;

#[derive(Debug, Subcommand)]
pub enum Payments {
    /// Build the signed event the `test` gateway would send about an order; print it, or
    /// deliver it to a running server's callback endpoint.
    Simulate {
        /// Handle of the store.
        #[arg(long)]
        store: String,
        /// The order (ord_…).
        #[arg(long)]
        order: String,
        #[arg(value_enum)]
        event: SimulatedEvent,
        /// Amount in minor units (default: the order total, or the refund's amount).
        #[arg(long)]
        amount: Option<i64>,
        /// For `refunded`: the StormCom refund (rfd_…) the gateway carried out.
        #[arg(long)]
        refund: Option<String>,
        /// Sign as if at this Unix time (default: now).
        #[arg(long)]
        timestamp: Option<i64>,
        /// Base URL of a running server (e.g. http://127.0.0.1:8080) to POST the event to.
        #[arg(long)]
        deliver: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SimulatedEvent {
    /// payment_intent.succeeded: the order becomes paid.
    Succeeded,
    /// payment_intent.payment_failed: the order is cancelled, stock and code released.
    Failed,
    /// refund.updated (succeeded): confirms a refund, or records one made at the gateway.
    Refunded,
}

pub async fn run(app: &App, command: Payments) -> anyhow::Result<()> {
    let Payments::Simulate {
        store,
        order,
        event,
        amount,
        refund,
        timestamp,
        deliver,
    } = command;
    let store = app
        .store_by_handle(&store)
        .await
        .map_err(|_| anyhow::anyhow!("no store with handle '{store}'"))?;
    let order = order
        .parse()
        .map_err(|_| anyhow::anyhow!("--order must be an order id (ord_…)"))?;
    let refund = refund
        .map(|r| {
            r.parse()
                .map_err(|_| anyhow::anyhow!("--refund must be a refund id (rfd_…)"))
        })
        .transpose()?;
    let what = match event {
        SimulatedEvent::Succeeded => Simulated::Succeeded,
        SimulatedEvent::Failed => Simulated::Failed,
        SimulatedEvent::Refunded => Simulated::Refunded,
    };
    let signed = app
        .simulate_gateway_event(store.id, order, what, amount, refund, timestamp)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let Some(base) = deliver else {
        let printed = serde_json::json!({
            "event_id": signed.event_id,
            "stripe_signature": signed.signature,
            "body": signed.body,
        });
        println!("{printed}");
        return Ok(());
    };
    let url = format!("{}/v1/payments/test/callbacks/{}", base.trim_end_matches('/'), store.id);
    let response = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .header("stripe-signature", &signed.signature)
        .body(signed.body)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    println!("{status} {text}");
    if !status.is_success() {
        bail!("the server refused the event");
    }
    Ok(())
}
