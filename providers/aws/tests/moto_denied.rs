//! Refused credentials and a missing permission through the real SDK against a moto that
//! checks them (IAM policies enforced): provisioning fails with [`Error::Denied`], which names
//! the API call that needs the permission and the SDK's credential chain, so the pool stops
//! instead of retrying.

use aws_sdk_ec2::Client;
use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
use murmur_aws::{CHAIN, Ec2, Placement};
use murmur_pool::{Error, Provider, Provision, Shape, Tags};
use murmur_testkit::moto::Moto;

fn client(url: &str, key: &str, secret: &str) -> Client {
    let config = aws_sdk_ec2::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(key, secret, None, None, "test"))
        .endpoint_url(url)
        .build();
    Client::from_conf(config)
}

/// One IAM call, among the requests moto does not check.
fn iam(moto: &Moto, params: &[(&str, &str)]) -> String {
    let (status, answer) = moto.query("iam", "2010-05-08", params);
    assert_eq!(status, 200, "{params:?}: {answer}");
    answer
}

fn between<'t>(text: &'t str, open: &str, close: &str) -> &'t str {
    let start = text.find(open).expect(open) + open.len();
    let end = text[start..].find(close).expect(close) + start;
    &text[start..end]
}

fn request(image: &str) -> Provision {
    Provision {
        tags: Tags {
            tenant: "local".into(),
            pool: "cloud".into(),
            machine: "m-1".into(),
            cluster: "c-1".into(),
        },
        shape: Shape {
            machine_type: "t3.micro".into(),
            image: image.into(),
            disk_gb: 8,
        },
        boot_script: "#!/bin/sh\ntrue\n".into(),
    }
}

fn placement(url: &str) -> Placement {
    Placement {
        name: "aws-east".into(),
        region: "us-east-1".into(),
        endpoint_url: Some(url.into()),
        ..Placement::default()
    }
}

#[tokio::test]
async fn unknown_credentials_and_a_missing_permission_are_denied_naming_both() {
    // Four unchecked requests: the image lookup, the user, its key and its policy.
    let Some(moto) = Moto::start_checking_credentials(4) else {
        return;
    };
    let url = moto.url();
    let images = client(url, "testing", "testing")
        .describe_images()
        .owners("amazon")
        .send()
        .await
        .expect("images");
    let image = images.images()[0].image_id().expect("an id").to_owned();
    iam(&moto, &[("Action", "CreateUser"), ("UserName", "murmur")]);
    let key = iam(
        &moto,
        &[("Action", "CreateAccessKey"), ("UserName", "murmur")],
    );
    let (id, secret) = (
        between(&key, "<AccessKeyId>", "</AccessKeyId>"),
        between(&key, "<SecretAccessKey>", "</SecretAccessKey>"),
    );
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ec2:DescribeImages","ec2:DescribeInstances"],"Resource":"*"}]}"#;
    iam(
        &moto,
        &[
            ("Action", "PutUserPolicy"),
            ("UserName", "murmur"),
            ("PolicyName", "describe-only"),
            ("PolicyDocument", policy),
        ],
    );

    // The user may look, not create: RunInstances is the permission named.
    let limited = Ec2::with_client(placement(url), client(url, id, secret));
    let denied = limited
        .provision(&request(&image))
        .await
        .expect_err("denied");
    assert!(denied.stops_pool(), "{denied:?}");
    match &denied {
        Error::Denied { action, code, .. } => {
            assert_eq!(action, "ec2:RunInstances");
            assert_eq!(code, "AccessDenied");
        }
        other => panic!("not a denial: {other:?}"),
    }
    let said = denied.to_string();
    assert!(
        said.contains(CHAIN) && said.contains("must allow ec2:RunInstances"),
        "{said}"
    );
    assert!(limited.list("c-1").await.is_ok(), "listing is allowed");

    // Credentials moto has never seen: refused at the first call, the image lookup.
    let stranger = Ec2::with_client(placement(url), client(url, "AKIANOBODY", "nothing"));
    let refused = stranger
        .provision(&request(&image))
        .await
        .expect_err("refused");
    match &refused {
        Error::Denied { action, code, .. } => {
            assert_eq!(action, "ec2:DescribeImages");
            assert_eq!(code, "AuthFailure");
        }
        other => panic!("not a denial: {other:?}"),
    }
}
