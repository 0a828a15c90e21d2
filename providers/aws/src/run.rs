//! RunInstances: one instance with hibernation configured, an encrypted root volume, the four
//! murmur tags and the boot script as user-data.

use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, HibernationOptionsRequest, IamInstanceProfileSpecification,
    InstanceType, ResourceType, Tag, TagSpecification, VolumeType,
};
use base64::Engine as _;
use murmur_pool::{Error, Instance, Provision};

use crate::{Ec2, Placement, state};

/// EC2 caps user-data at 16 KiB before base64.
const USER_DATA_LIMIT: usize = 16 * 1024;

impl Ec2 {
    /// The image's root device name: the encrypted volume must replace that one, or hibernation
    /// has nowhere to write memory. An unknown image is the configuration's fault.
    pub(crate) async fn root_device(&self, image: &str) -> Result<String, Error> {
        let unknown = |problem: String| Error::Config {
            placement: self.placement.name.clone(),
            key: "image_id".into(),
            problem,
        };
        if image.trim().is_empty() {
            return Err(unknown(
                "is missing in the environment's `aws` shape".into(),
            ));
        }
        let found = self
            .client
            .describe_images()
            .image_ids(image)
            .send()
            .await
            .map_err(|e| self.error("DescribeImages", image, e));
        let found = match found {
            Err(Error::Api { code, message, .. }) if code.starts_with("InvalidAMIID") => {
                return Err(unknown(format!(
                    "{image} is not usable ({code}): {message}"
                )));
            }
            other => other?,
        };
        let Some(root) = found.images().first().and_then(|i| i.root_device_name()) else {
            return Err(unknown(format!(
                "{image} was not found in {}",
                self.placement.region
            )));
        };
        Ok(root.to_owned())
    }

    pub(crate) async fn run(
        &self,
        request: &Provision,
        subnet: &str,
        root: &str,
    ) -> Result<Instance, Error> {
        if request.boot_script.len() > USER_DATA_LIMIT {
            return Err(Error::Api {
                action: "RunInstances".into(),
                code: "UserDataTooLarge".into(),
                message: format!(
                    "the boot script is {} bytes; EC2 takes 16 KiB",
                    request.boot_script.len()
                ),
            });
        }
        let user_data = base64::engine::general_purpose::STANDARD.encode(&request.boot_script);
        let mut call = self
            .client
            .run_instances()
            .image_id(&request.shape.image)
            .instance_type(InstanceType::from(request.shape.machine_type.as_str()))
            .min_count(1)
            .max_count(1)
            .hibernation_options(
                HibernationOptionsRequest::builder()
                    .configured(true)
                    .build(),
            )
            .block_device_mappings(root_volume(root, request.shape.disk_gb))
            .tag_specifications(tags(request, ResourceType::Instance))
            .tag_specifications(tags(request, ResourceType::Volume))
            .user_data(user_data)
            .set_security_group_ids(
                Some(self.placement.security_group_ids.clone()).filter(|g| !g.is_empty()),
            );
        if !subnet.is_empty() {
            call = call.subnet_id(subnet);
        }
        if let Some(profile) = &self.placement.instance_profile {
            call = call.iam_instance_profile(
                IamInstanceProfileSpecification::builder()
                    .name(profile)
                    .build(),
            );
        }
        let ran = call
            .send()
            .await
            .map_err(|e| self.error("RunInstances", subnet, e))?;
        ran.instances()
            .first()
            .and_then(state::instance)
            .ok_or_else(|| Error::Api {
                action: "RunInstances".into(),
                code: "NoInstance".into(),
                message: "the answer named no instance".into(),
            })
    }
}

fn root_volume(device: &str, disk_gb: u32) -> BlockDeviceMapping {
    let ebs = EbsBlockDevice::builder()
        .encrypted(true)
        .delete_on_termination(true)
        .volume_type(VolumeType::Gp3)
        .volume_size(i32::try_from(disk_gb).unwrap_or(i32::MAX));
    BlockDeviceMapping::builder()
        .device_name(device)
        .ebs(ebs.build())
        .build()
}

fn tags(request: &Provision, resource: ResourceType) -> TagSpecification {
    let mut spec = TagSpecification::builder().resource_type(resource);
    for (key, value) in request.tags.pairs() {
        spec = spec.tags(Tag::builder().key(key).value(value).build());
    }
    spec.build()
}

/// What provisioning would call, for `--dry-run`; the user-data is counted, never shown.
pub(crate) fn plan(placement: &Placement, request: &Provision) -> Vec<String> {
    let tags: Vec<String> = request
        .tags
        .pairs()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut calls = vec![format!(
        "ec2:DescribeImages region={} ImageIds={}",
        placement.region, request.shape.image
    )];
    let subnets = crate::locations(placement);
    for (i, subnet) in subnets.iter().enumerate() {
        let subnet = if subnet.is_empty() {
            "(default)"
        } else {
            subnet
        };
        let when = if i == 0 {
            String::new()
        } else {
            " (only if the previous subnet has no capacity)".into()
        };
        calls.push(format!(
            "ec2:RunInstances ImageId={} InstanceType={} SubnetId={subnet} SecurityGroupIds=[{}] \
             HibernationOptions.Configured=true BlockDeviceMappings=[root: Encrypted=true VolumeSize={} gp3] \
             Tags=[{}] UserData=<{} bytes, withheld: it holds a bootstrap credential>{when}",
            request.shape.image,
            request.shape.machine_type,
            placement.security_group_ids.join(","),
            request.shape.disk_gb,
            tags.join(","),
            request.boot_script.len(),
        ));
    }
    calls
}
