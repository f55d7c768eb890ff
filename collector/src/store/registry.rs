//! Tokens, enrollment, routers and API keys.

use super::*;

impl Store {
    pub fn insert_token(&self, t: &NewToken) -> Result<(), StoreError> {
        let _ = t;
        Ok(())
    }
    pub fn list_tokens(&self) -> Result<Vec<TokenRow>, StoreError> {
        Ok(Vec::new())
    }
    pub fn enroll<F>(
        &mut self,
        token_id: &str,
        secret_hash: &[u8; 32],
        requested_name: Option<&str>,
        hostname: &str,
        now: i64,
        sign: F,
    ) -> Result<RouterRow, EnrollError>
    where
        F: FnOnce(&str) -> Result<CertInfo, String>,
    {
        let _ = (token_id, secret_hash, requested_name, hostname, now, sign);
        Err(EnrollError::Unknown)
    }
    pub fn router_by_fingerprint(&self, fp: &str) -> Result<Option<RouterRow>, StoreError> {
        let _ = fp;
        Ok(None)
    }
    pub fn router(&self, name_or_id: &str) -> Result<Option<RouterRow>, StoreError> {
        let _ = name_or_id;
        Ok(None)
    }
    pub fn list_routers(&self) -> Result<Vec<RouterRow>, StoreError> {
        Ok(Vec::new())
    }
    pub fn revoke_router(&mut self, name_or_id: &str, now: i64) -> Result<RouterRow, StoreError> {
        let _ = now;
        Err(StoreError::NotFound(name_or_id.into()))
    }
    pub fn rename_router(
        &mut self,
        name_or_id: &str,
        new_name: &str,
    ) -> Result<RouterRow, StoreError> {
        let _ = new_name;
        Err(StoreError::NotFound(name_or_id.into()))
    }
    pub fn update_router_cert(
        &mut self,
        router_id: i64,
        fp: &str,
        not_after: i64,
    ) -> Result<(), StoreError> {
        let _ = (router_id, fp, not_after);
        Ok(())
    }
    pub fn revoked_router_ids(&self) -> Result<Vec<i64>, StoreError> {
        Ok(Vec::new())
    }
    pub fn insert_api_key(
        &self,
        id: &str,
        key_hash: &[u8; 32],
        role: &str,
        name: &str,
        created_at: i64,
    ) -> Result<(), StoreError> {
        let _ = (id, key_hash, role, name, created_at);
        Ok(())
    }
    pub fn api_key_role(
        &self,
        key_hash: &[u8; 32],
    ) -> Result<Option<(String, String)>, StoreError> {
        let _ = key_hash;
        Ok(None)
    }
}
