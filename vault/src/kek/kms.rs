//! A KEK that never leaves AWS KMS: data keys are wrapped with `Encrypt` and opened with
//! `Decrypt`, the tenant passed as encryption context (KMS's associated data), so a wrapped
//! key copied to another tenant's row does not open. The id recorded is `kms:` and the key's
//! ARN (looked up once with `DescribeKey`), so an alias that later points elsewhere still
//! opens what the old key wrapped.

use aws_sdk_kms::Client;
use aws_sdk_kms::error::{DisplayErrorContext, SdkError};
use aws_sdk_kms::primitives::Blob;
use zeroize::Zeroizing;

use super::WrappedKey;
use crate::aead::SymmetricKey;
use crate::{DataKey, Error};

const TENANT_CONTEXT: &str = "murmur:tenant";
const ID_PREFIX: &str = "kms:";

pub struct KmsKek {
    client: Client,
    arn: String,
    id: String,
}

impl std::fmt::Debug for KmsKek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KmsKek({})", self.id)
    }
}

impl KmsKek {
    /// The KMS key `key_id` (an id, ARN or `alias/…`) through `client`.
    pub async fn connect(client: Client, key_id: &str) -> Result<Self, Error> {
        let described = client
            .describe_key()
            .key_id(key_id)
            .send()
            .await
            .map_err(|e| failure("describe the key", e))?;
        let arn = described
            .key_metadata()
            .and_then(|m| m.arn())
            .ok_or_else(|| Error::Kms {
                action: "describe the key",
                message: format!("it answered no ARN for `{key_id}`"),
            })?
            .to_owned();
        Ok(Self {
            client,
            id: format!("{ID_PREFIX}{arn}"),
            arn,
        })
    }

    /// The KMS key `key_id` with the AWS configuration of the environment (region,
    /// credentials, `AWS_ENDPOINT_URL_KMS`).
    pub async fn from_environment(key_id: &str) -> Result<Self, Error> {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        Self::connect(Client::new(&config), key_id).await
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub(crate) async fn wrap(&self, tenant: &str, key: &DataKey) -> Result<WrappedKey, Error> {
        let encrypted = self
            .client
            .encrypt()
            .key_id(&self.arn)
            .plaintext(Blob::new(key.0.bytes().to_vec()))
            .encryption_context(TENANT_CONTEXT, tenant)
            .send()
            .await
            .map_err(|e| failure("wrap a data key", e))?;
        let bytes = encrypted
            .ciphertext_blob()
            .ok_or_else(|| Error::Kms {
                action: "wrap a data key",
                message: "it answered no ciphertext".to_owned(),
            })?
            .as_ref()
            .to_vec();
        Ok(WrappedKey {
            kek_id: self.id.clone(),
            bytes,
        })
    }

    pub(crate) async fn unwrap(
        &self,
        tenant: &str,
        wrapped: &WrappedKey,
    ) -> Result<DataKey, Error> {
        let refused = || Error::Unwrap {
            tenant: tenant.to_owned(),
            id: wrapped.kek_id.clone(),
        };
        let arn = wrapped.kek_id.strip_prefix(ID_PREFIX).ok_or_else(refused)?;
        let decrypted = self
            .client
            .decrypt()
            .key_id(arn)
            .ciphertext_blob(Blob::new(wrapped.bytes.clone()))
            .encryption_context(TENANT_CONTEXT, tenant)
            .send()
            .await
            .map_err(|e| {
                let bad = e
                    .as_service_error()
                    .is_some_and(|s| s.is_invalid_ciphertext_exception());
                if bad {
                    refused()
                } else {
                    failure("open a data key", e)
                }
            })?;
        let plain = Zeroizing::new(
            decrypted
                .plaintext()
                .map(|blob| blob.as_ref().to_vec())
                .unwrap_or_default(),
        );
        SymmetricKey::from_slice(&plain)
            .map(DataKey)
            .ok_or_else(refused)
    }
}

fn failure<E, R>(action: &'static str, error: SdkError<E, R>) -> Error
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let detail = DisplayErrorContext(&error).to_string();
    match error {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
            Error::KmsUnreachable { detail }
        }
        _ => Error::Kms {
            action,
            message: detail,
        },
    }
}
