//! Releases: add, remove, list with their update relations.

use chrono::Utc;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{check_text, inserted_or, to_json, Context, ServiceResult};
use crate::core::compatibility::{relation, ReleaseSummary};
use crate::core::enums::{OperatingSystem, ReleaseState};
use crate::core::refusal::Refusal;
use crate::core::release_sources::{validate_stored, StoredSources};
use crate::store::entity::{cluster, release};

/// Longest list of versions a release may carry.
const MAX_VERSIONS: usize = 100;

/// `create_release` args: the fields of contract section 1.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRelease {
    pub name: String,
    pub version: String,
    pub operating_system: OperatingSystem,
    #[serde(default)]
    pub description: String,
    #[serde(default = "available")]
    pub state: ReleaseState,
    #[serde(default)]
    pub can_update_from_versions: Vec<String>,
    #[serde(default)]
    pub compatible_fuel_versions: Vec<String>,
    #[serde(default)]
    pub repo_metadata: Map<String, Value>,
    #[serde(default)]
    pub puppet_modules_source: String,
    #[serde(default)]
    pub puppet_manifests_source: String,
}

fn available() -> ReleaseState {
    ReleaseState::Available
}

/// `release_id` args.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRef {
    pub release_id: i32,
}

impl NewRelease {
    fn validate(&self) -> Result<(), Refusal> {
        check_text("name", &self.name, 100)?;
        check_text("version", &self.version, 30)?;
        for (field, list) in [
            ("can_update_from_versions", &self.can_update_from_versions),
            ("compatible_fuel_versions", &self.compatible_fuel_versions),
        ] {
            if list.len() > MAX_VERSIONS {
                return Err(Refusal::invalid_request(format!(
                    "{field} lists more than {MAX_VERSIONS} versions"
                )));
            }
            for version in list {
                check_text(field, version, 30)?;
            }
        }
        validate_stored(self.operating_system, self.sources())
            .map_err(|err| Refusal::invalid_request(err.to_string()))
    }

    fn sources(&self) -> StoredSources<'_> {
        StoredSources {
            repo_metadata: &self.repo_metadata,
            puppet_modules_source: &self.puppet_modules_source,
            puppet_manifests_source: &self.puppet_manifests_source,
        }
    }
}

/// Reads a JSON array of strings as stored.
pub(crate) fn string_list(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The facts the compatibility rule needs.
pub(crate) fn summary(model: &release::Model) -> ReleaseSummary {
    ReleaseSummary {
        id: model.id,
        name: model.name.clone(),
        version: model.version.clone(),
        operating_system: OperatingSystem::parse(&model.operating_system)
            .unwrap_or(OperatingSystem::Ubuntu),
        state: ReleaseState::parse(&model.state).unwrap_or(ReleaseState::NotAvailable),
        can_update_from_versions: string_list(&model.can_update_from_versions),
        compatible_fuel_versions: string_list(&model.compatible_fuel_versions),
    }
}

/// Loads a release or answers `not_found`.
pub(crate) async fn find<C: ConnectionTrait>(db: &C, id: i32) -> ServiceResult<release::Model> {
    release::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| Refusal::not_found(format!("release {id} does not exist")).into())
}

/// Loads two releases with one query (they may be the same), each or `not_found`, `first`'s
/// refusal ahead of `second`'s.
pub(crate) async fn find_two<C: ConnectionTrait>(
    db: &C,
    first: i32,
    second: i32,
) -> ServiceResult<(release::Model, release::Model)> {
    let found = release::Entity::find()
        .filter(release::Column::Id.is_in([first, second]))
        .all(db)
        .await?;
    let pick = |id: i32| {
        found
            .iter()
            .find(|r| r.id == id)
            .cloned()
            .ok_or_else(|| Refusal::not_found(format!("release {id} does not exist")))
    };
    Ok((pick(first)?, pick(second)?))
}

/// Adds a release; its own sources must be usable by Astute and inside
/// `[security] allowed_source_prefixes` (the master's defaults are checked when it is cast).
pub async fn create_release<C: ConnectionTrait>(
    db: &C,
    ctx: &Context,
    new: NewRelease,
) -> ServiceResult<Value> {
    new.validate()?;
    if let Some(prefixes) = &ctx.source_prefixes {
        prefixes
            .check(new.sources())
            .map_err(|err| Refusal::invalid_request(err.to_string()))?;
    }
    let duplicate = Refusal::conflict(format!(
        "a release named '{}' with version '{}' already exists",
        new.name, new.version
    ));
    let existing = release::Entity::find()
        .filter(release::Column::Name.eq(new.name.as_str()))
        .filter(release::Column::Version.eq(new.version.as_str()))
        .count(db)
        .await?;
    if existing > 0 {
        return Err(duplicate.into());
    }
    let inserted = release::Entity::insert(release::ActiveModel {
        id: NotSet,
        name: Set(new.name),
        version: Set(new.version),
        operating_system: Set(new.operating_system.as_str().into()),
        description: Set(new.description),
        state: Set(new.state.as_str().into()),
        can_update_from_versions: Set(json!(new.can_update_from_versions)),
        compatible_fuel_versions: Set(json!(new.compatible_fuel_versions)),
        repo_metadata: Set(Value::Object(new.repo_metadata)),
        puppet_modules_source: Set(new.puppet_modules_source),
        puppet_manifests_source: Set(new.puppet_manifests_source),
        created_at: Set(Utc::now()),
    })
    .exec_with_returning(db)
    .await;
    inserted_or(inserted, duplicate)
}

pub async fn delete_release<C: ConnectionTrait>(db: &C, args: ReleaseRef) -> ServiceResult<Value> {
    let model = find(db, args.release_id).await?;
    let users = cluster::Entity::find()
        .filter(
            Condition::any()
                .add(cluster::Column::ReleaseId.eq(model.id))
                .add(cluster::Column::PendingReleaseId.eq(model.id)),
        )
        .count(db)
        .await?;
    if users > 0 {
        return Err(Refusal::conflict(format!(
            "release {} is used by {users} cluster(s) as current or pending release",
            model.id
        ))
        .into());
    }
    release::Entity::delete_by_id(model.id).exec(db).await?;
    Ok(json!({}))
}

pub async fn get_release<C: ConnectionTrait>(db: &C, args: ReleaseRef) -> ServiceResult<Value> {
    let all = release::Entity::find()
        .order_by_asc(release::Column::Id)
        .all(db)
        .await?;
    let model = all
        .iter()
        .find(|r| r.id == args.release_id)
        .ok_or_else(|| Refusal::not_found(format!("release {} does not exist", args.release_id)))?;
    Ok(with_versions(model, &all))
}

pub async fn list_releases<C: ConnectionTrait>(db: &C) -> ServiceResult<Value> {
    let all = release::Entity::find()
        .order_by_asc(release::Column::Id)
        .all(db)
        .await?;
    Ok(Value::Array(
        all.iter().map(|r| with_versions(r, &all)).collect(),
    ))
}

/// A release with its versions info: which releases present here it can be reached from and
/// can move to, and by which operation.
fn with_versions(model: &release::Model, all: &[release::Model]) -> Value {
    let me = summary(model);
    let mut from = Vec::new();
    let mut to = Vec::new();
    for other in all.iter().filter(|o| o.id != model.id) {
        let other_summary = summary(other);
        if let Some(op) = relation(&other_summary, &me) {
            from.push(json!({"release_id": other.id, "version": other.version, "operation": op}));
        }
        if let Some(op) = relation(&me, &other_summary) {
            to.push(json!({"release_id": other.id, "version": other.version, "operation": op}));
        }
    }
    let mut value = to_json(model);
    if let Value::Object(fields) = &mut value {
        fields.insert(
            "versions".into(),
            json!({"current": model.version, "can_update_from": from, "can_update_to": to}),
        );
    }
    value
}
