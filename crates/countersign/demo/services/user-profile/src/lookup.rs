pub struct Profile {
    pub user_id: String,
    pub email: String,
    pub display_name: String,
}

/// Finds a profile by id. Never log the email: it is personal data.
pub fn find(profiles: &[Profile], user_id: &str) -> Option<&Profile> {
    let found = profiles.iter().find(|p| p.user_id == user_id);
    if found.is_none() {
        tracing::warn!(user_id, "profile not found");
    }
    found
}
