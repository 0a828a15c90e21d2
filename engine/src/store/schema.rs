//! Table and column names, once.

use sea_query::Iden;

#[derive(Iden, Clone, Copy)]
pub enum Runs {
    Table,
    Id,
    Tenant,
    Flight,
    FlightPath,
    Source,
    Digest,
    Inputs,
    Status,
    Version,
    CreatedAt,
    FinishedAt,
    Event,
    LeaseOwner,
    LeaseHolder,
    LeaseEpoch,
    LeaseAcquiredAt,
    LeaseExpiresAt,
}

#[derive(Iden, Clone, Copy)]
pub enum Agents {
    Table,
    RunId,
    Slug,
    Position,
    State,
    Attempts,
    Response,
    Error,
    StartedAt,
    FinishedAt,
    SessionId,
    Branch,
    Commits,
    DiffStat,
    Prs,
    CostUsd,
    Turns,
    Machine,
}

#[derive(Iden, Clone, Copy)]
pub enum PullRequests {
    Table,
    Id,
    RunId,
    Slug,
    Branch,
    Base,
    Title,
    Body,
    State,
    CreatedAt,
    MergedAt,
}

#[derive(Iden, Clone, Copy)]
pub enum Events {
    Table,
    RunId,
    Seq,
    At,
    Kind,
    Slug,
    Data,
}

#[derive(Iden, Clone, Copy)]
pub enum ApiTokens {
    Table,
    Hash,
    Name,
    Tenant,
    CreatedAt,
    Kind,
    Pool,
}

#[derive(Iden, Clone, Copy)]
pub enum ScheduleTicks {
    Table,
    Tenant,
    Schedule,
    Tick,
    TakenAt,
    RunId,
}

#[derive(Iden, Clone, Copy)]
pub enum FlightGenerations {
    Table,
    Tenant,
    Name,
    Generation,
    Markdown,
    Digest,
    Author,
    CreatedAt,
    DeletedAt,
}

#[derive(Iden, Clone, Copy)]
pub enum PoolClaims {
    Table,
    Tenant,
    Pool,
    RunId,
    Agent,
    Attempt,
    Owner,
    Holder,
    ExpiresAt,
}

#[derive(Iden, Clone, Copy)]
pub enum PoolWaiters {
    Table,
    Tenant,
    Pool,
    RunId,
    RunCreatedAt,
    Wants,
    Owner,
    Holder,
    ExpiresAt,
}

#[derive(Iden, Clone, Copy)]
pub enum TenantKeys {
    Table,
    Tenant,
    KekId,
    Wrapped,
    CreatedAt,
    RotatedAt,
}

#[derive(Iden, Clone, Copy)]
pub enum Secrets {
    Table,
    Tenant,
    Name,
    Ciphertext,
    Nonce,
    CreatedBy,
    CreatedAt,
    UpdatedBy,
    UpdatedAt,
}

#[derive(Iden, Clone, Copy)]
pub enum Machines {
    Table,
    Tenant,
    Id,
    Pool,
    Placement,
    ProviderId,
    State,
    AgentRunId,
    AgentSlug,
    PublicKey,
    CredentialHash,
    LeaseExpiresAt,
    LastSeenAt,
    CreatedAt,
    Version,
}

#[derive(Iden, Clone, Copy)]
pub enum MachineEvents {
    Table,
    Tenant,
    MachineId,
    Seq,
    At,
    Event,
}
