//! The placements of `.murmur/murmur.yaml`, checked without any SDK so that a binary built
//! without a provider still refuses a broken configuration with the key at fault.

use crate::Error;

/// `placements.NAME` with `provider: aws`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsPlacement {
    /// The placement's name in `.murmur/murmur.yaml`, for messages.
    pub name: String,
    pub region: String,
    /// Tried in order while one reports no capacity; empty means the default VPC's subnet.
    pub subnet_ids: Vec<String>,
    pub security_group_ids: Vec<String>,
    /// An IAM instance profile name for the VMs, if they need one.
    pub instance_profile: Option<String>,
    /// A private or test endpoint instead of the region's public one.
    pub endpoint_url: Option<String>,
}

impl AwsPlacement {
    /// Refuses a placement that cannot work, naming the key.
    pub fn validate(&self) -> Result<(), Error> {
        if self.region.trim().is_empty() {
            return Err(config(
                &self.name,
                "region",
                "is missing: name the AWS region, e.g. us-east-1",
            ));
        }
        if let Some(subnet) = self.subnet_ids.iter().find(|s| !s.starts_with("subnet-")) {
            return Err(config(
                &self.name,
                "subnet_ids",
                &format!("holds {subnet:?}, not a subnet id"),
            ));
        }
        if let Some(group) = self
            .security_group_ids
            .iter()
            .find(|s| !s.starts_with("sg-"))
        {
            let problem = format!("holds {group:?}, not a security group id");
            return Err(config(&self.name, "security_group_ids", &problem));
        }
        Ok(())
    }
}

/// `placements.NAME` with `provider: gcp`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcpPlacement {
    /// The placement's name in `.murmur/murmur.yaml`, for messages.
    pub name: String,
    pub project: String,
    /// Tried in order while one reports no capacity.
    pub zones: Vec<String>,
    /// A network name (`default`) or path; empty means `default`.
    pub network: String,
    /// A service account e-mail for the VMs, if they need one.
    pub service_account: Option<String>,
    /// A private or test endpoint instead of `https://compute.googleapis.com`.
    pub endpoint: Option<String>,
}

impl GcpPlacement {
    /// Refuses a placement that cannot work, naming the key.
    pub fn validate(&self) -> Result<(), Error> {
        if self.project.trim().is_empty() {
            return Err(config(
                &self.name,
                "project",
                "is missing: name the Google Cloud project",
            ));
        }
        if self.zones.is_empty() {
            return Err(config(
                &self.name,
                "zones",
                "is missing: name at least one zone, e.g. us-central1-a",
            ));
        }
        if let Some(zone) = self.zones.iter().find(|z| !is_gce_name(z)) {
            return Err(config(
                &self.name,
                "zones",
                &format!("holds {zone:?}, not a zone name"),
            ));
        }
        Ok(())
    }
}

/// A Compute Engine zone or resource name: lowercase letters, digits and `-`, starting with a
/// letter, at most 63.
pub fn is_gce_name(text: &str) -> bool {
    let mut chars = text.chars();
    matches!(chars.next(), Some('a'..='z'))
        && text.len() <= 63
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-'))
}

/// A configuration error of placement `placement`.
pub fn config(placement: &str, key: &str, problem: &str) -> Error {
    Error::Config {
        placement: placement.to_owned(),
        key: key.to_owned(),
        problem: problem.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(error: Error) -> String {
        match error {
            Error::Config { key, .. } => key,
            other => panic!("not a configuration error: {other}"),
        }
    }

    #[test]
    fn each_broken_placement_names_its_key() {
        let aws = AwsPlacement {
            name: "aws-east".into(),
            region: "us-east-1".into(),
            ..AwsPlacement::default()
        };
        assert!(aws.validate().is_ok());
        let no_region = AwsPlacement {
            region: " ".into(),
            ..aws.clone()
        };
        assert_eq!(key_of(no_region.validate().unwrap_err()), "region");
        let subnet = AwsPlacement {
            subnet_ids: vec!["subnet-1".into(), "vpc-1".into()],
            ..aws.clone()
        };
        assert_eq!(key_of(subnet.validate().unwrap_err()), "subnet_ids");
        let group = AwsPlacement {
            security_group_ids: vec!["default".into()],
            ..aws
        };
        assert_eq!(key_of(group.validate().unwrap_err()), "security_group_ids");

        let gcp = GcpPlacement {
            name: "gcp-a".into(),
            project: "acme".into(),
            zones: vec!["us-central1-a".into()],
            ..GcpPlacement::default()
        };
        assert!(gcp.validate().is_ok());
        assert_eq!(
            key_of(
                GcpPlacement {
                    project: String::new(),
                    ..gcp.clone()
                }
                .validate()
                .unwrap_err()
            ),
            "project"
        );
        assert_eq!(
            key_of(
                GcpPlacement {
                    zones: Vec::new(),
                    ..gcp.clone()
                }
                .validate()
                .unwrap_err()
            ),
            "zones"
        );
        let bad_zone = GcpPlacement {
            zones: vec!["US Central".into()],
            ..gcp
        };
        assert_eq!(key_of(bad_zone.validate().unwrap_err()), "zones");
    }
}
