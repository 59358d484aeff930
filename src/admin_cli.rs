//! `raftmq admin`: group administration commands over the remoting protocol
//! ([`raftmq::admin::GroupAdmin`]). Each subcommand talks to one broker (`-b host:port`);
//! changes must be sent to the group's leader, and a follower's refusal names the leader.

use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use raftmq::admin::{parse_node_id, GroupAdmin};

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Show the Raft group as one broker sees it: term, leader, voters and learners, and (on
    /// the leader) each member's matched log index; the log's last, committed and applied
    /// index.
    GroupStatus(StatusArgs),
    /// Add a node to the group as a learner (receives the log, does not vote) and wait until
    /// it has caught up. Start the node first with `dLegerJoin=true`, a new `dLegerSelfId` and
    /// an empty store. Send to the leader.
    AddLearner(AddLearnerArgs),
    /// Make a learner a voter. Send to the leader.
    Promote(NodeArgs),
    /// Remove a node from the group (a voter stops voting first). The leader cannot remove
    /// itself: transfer leadership first. Send to the leader.
    RemoveNode(NodeArgs),
    /// Hand leadership to another voter and wait until it leads; the old leader refuses sends
    /// meanwhile (producers retry). Send to the leader.
    TransferLeader(TransferArgs),
}

#[derive(Debug, Args)]
pub struct Broker {
    /// Broker to ask, `host:port` (its `listenPort`).
    #[arg(short = 'b', long = "broker", value_name = "ADDR")]
    broker: String,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    broker: Broker,
    /// Print the raw JSON answer.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct Change {
    #[command(flatten)]
    broker: Broker,
    /// Seconds the broker may take for the change.
    #[arg(long = "timeout", value_name = "SECS", default_value_t = 30)]
    timeout: u64,
}

#[derive(Debug, Args)]
pub struct AddLearnerArgs {
    #[command(flatten)]
    change: Change,
    /// Id of the new node, `n<number>` (its `dLegerSelfId`); never reuse the id of a node
    /// that was removed or wiped.
    #[arg(long = "node", value_name = "ID")]
    node: String,
    /// Its Raft transport address, `host:port` (its `dLegerPeers` entry).
    #[arg(long = "raft-addr", value_name = "ADDR")]
    raft_addr: String,
    /// Its broker address, `host:port`, recorded in the membership so followers can point
    /// clients at it when it leads.
    #[arg(long = "broker-addr", value_name = "ADDR")]
    broker_addr: Option<String>,
}

#[derive(Debug, Args)]
pub struct NodeArgs {
    #[command(flatten)]
    change: Change,
    /// The node, `n<number>`.
    #[arg(long = "node", value_name = "ID")]
    node: String,
}

#[derive(Debug, Args)]
pub struct TransferArgs {
    #[command(flatten)]
    change: Change,
    /// The voter to hand leadership to, `n<number>`.
    #[arg(long = "to", value_name = "ID")]
    to: String,
}

fn id(text: &str) -> anyhow::Result<u64> {
    parse_node_id(text).map_err(anyhow::Error::msg)
}

fn admin(c: &Change) -> GroupAdmin {
    GroupAdmin::new(c.broker.broker.clone()).with_change_timeout(Duration::from_secs(c.timeout))
}

/// Runs one admin command, printing its result to stdout.
pub async fn run(cmd: AdminCommand) -> anyhow::Result<()> {
    match cmd {
        AdminCommand::GroupStatus(a) => {
            let s = GroupAdmin::new(a.broker.broker.clone())
                .status()
                .await
                .context("group-status")?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                print!("{s}");
            }
        }
        AdminCommand::AddLearner(a) => {
            let n = id(&a.node)?;
            admin(&a.change)
                .add_learner(n, &a.raft_addr, a.broker_addr.as_deref())
                .await
                .context("add-learner")?;
            println!("n{n} added as a learner and caught up");
        }
        AdminCommand::Promote(a) => {
            let n = id(&a.node)?;
            admin(&a.change).promote(n).await.context("promote")?;
            println!("n{n} is a voter");
        }
        AdminCommand::RemoveNode(a) => {
            let n = id(&a.node)?;
            admin(&a.change)
                .remove_node(n)
                .await
                .context("remove-node")?;
            println!("n{n} removed from the group");
        }
        AdminCommand::TransferLeader(a) => {
            let n = id(&a.to)?;
            admin(&a.change)
                .transfer_leader(n)
                .await
                .context("transfer-leader")?;
            println!("n{n} leads the group");
        }
    }
    Ok(())
}
