use super::*;

const GOOD: &str = "\
pools:
  cloud: { placement: aws-east, environment: standard, max_vms: 3, min_idle: 1, idle_timeout: 10m, boot_timeout: 2m }
  gce: { placement: gcp-a, environment: standard, max_vms: 2 }
  fleet: { placement: workers, max_vms: 2 }
environments:
  standard: { disk_gb: 20,
              aws: { instance_type: t3.micro, image_id: ami-1 },
              gcp: { machine_type: e2-small, image: projects/p/global/images/i } }
placements:
  aws-east: { provider: aws, region: us-east-1, subnet_ids: [subnet-1], endpoint_url: 'http://127.0.0.1:5000' }
  gcp-a: { provider: gcp, project: acme, zones: [us-central1-a, us-central1-b] }
server: { url: 'http://10.0.0.5:8080' }
";

fn load(yaml: &str) -> anyhow::Result<Config> {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join(".murmur")).expect("mkdir");
    std::fs::write(dir.path().join(FILE), yaml).expect("write");
    Config::load(dir.path())
}

fn refusal(yaml: &str) -> String {
    format!("{:#}", load(yaml).expect_err("refused"))
}

#[test]
fn cloud_pools_come_with_their_placement_and_shape() {
    let config = load(GOOD).expect("valid");
    let pools = cloud_pools(&config).expect("cloud pools");
    let names: Vec<&str> = pools.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["cloud", "gce"]);
    let cloud = &pools[0];
    assert_eq!(cloud.placement_name, "aws-east");
    assert!(
        matches!(&cloud.placement, Placement::Aws(p) if p.region == "us-east-1" && p.subnet_ids == ["subnet-1"])
    );
    assert_eq!(cloud.shape.machine_type, "t3.micro");
    assert_eq!(cloud.shape.image, "ami-1");
    assert_eq!(cloud.shape.disk_gb, 20);
    assert_eq!((cloud.max_vms, cloud.min_idle), (3, 1));
    assert_eq!(cloud.idle_timeout, Some(Duration::from_secs(600)));
    assert_eq!(cloud.boot_timeout, Duration::from_secs(120));
    let gce = &pools[1];
    assert!(matches!(&gce.placement, Placement::Gcp(p) if p.zones.len() == 2));
    assert_eq!(gce.shape.machine_type, "e2-small");
    assert_eq!(gce.boot_timeout, murmur_server::pools::DEFAULT_BOOT_TIMEOUT);
}

#[test]
fn each_broken_key_is_named() {
    let cases = [
        (
            "region: us-east-1, ",
            "placements.aws-east.region is missing",
        ),
        (
            ", image_id: ami-1",
            "environments.standard.aws.image_id is missing",
        ),
        (
            "machine_type: e2-small, ",
            "environments.standard.gcp.machine_type is missing",
        ),
        (
            ", zones: [us-central1-a, us-central1-b]",
            "placements.gcp-a.zones is missing",
        ),
        ("project: acme, ", "placements.gcp-a.project is missing"),
        ("subnet-1", "placements.aws-east.subnet_ids"),
        ("provider: aws, ", "placements.aws-east.provider is missing"),
        ("url: 'http://10.0.0.5:8080'", "server.url is missing"),
        (", max_vms: 3", "pools.cloud.max_vms is missing"),
        (
            "environment: standard, ",
            "pools.cloud.environment is missing",
        ),
    ];
    for (cut, named) in cases {
        assert!(GOOD.contains(cut), "{cut}");
        let broken = GOOD.replacen(cut, if cut == "subnet-1" { "vpc-1" } else { "" }, 1);
        let error = refusal(&broken);
        assert!(error.contains(named), "cutting {cut:?}: {error}");
    }
}

#[test]
fn keys_of_the_other_provider_and_unknown_names_are_refused() {
    let zones = GOOD.replace("region: us-east-1,", "region: us-east-1, zones: [a],");
    assert!(refusal(&zones).contains("placements.aws-east.zones is not a key of a aws placement"));
    let unknown = GOOD.replace("placement: aws-east", "placement: aws-west");
    let error = refusal(&unknown);
    assert!(
        error.contains("pools.cloud.placement is `aws-west`"),
        "{error}"
    );
    assert!(error.contains("aws-east, gcp-a"), "{error}");
    let provider = GOOD.replace("provider: gcp", "provider: azure");
    assert!(refusal(&provider).contains("placements.gcp-a.provider is `azure`"));
    let too_many = GOOD.replace("min_idle: 1", "min_idle: 4");
    assert!(refusal(&too_many).contains("pools.cloud.min_idle (4) is more than max_vms (3)"));
    let typo = GOOD.replace("disk_gb: 20", "disk: 20");
    assert!(refusal(&typo).contains("not a valid configuration"));
    let environment = GOOD.replace(
        "environment: standard, max_vms: 3",
        "environment: big, max_vms: 3",
    );
    assert!(refusal(&environment).contains("pools.cloud.environment names `big`"));
}
