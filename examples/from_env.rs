//! The settings `init()` reads from the environment, or from a section of
//! the program's own TOML file.
//!
//! ```text
//! cargo run --example from_env
//! NATS_URL=nats://127.0.0.1:4222 TIDINGS_STREAM=TIDINGS TIDINGS_SERVICE=billing cargo run --example from_env
//! ```

const FILE: &str = r#"
[tidings]
service = "billing"
shutdown_deadline = "3s"

[tidings.nats]
url = "nats://127.0.0.1:4222"
delivery = "jetstream"
ensure_stream = "BILLING"
credentials = { token = "s3cret" }
"#;

#[derive(serde::Deserialize)]
struct AppConfig {
    tidings: tidings::Settings,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let from_env = tidings::Settings::from_env()?;
    println!("from the environment: {from_env}");

    let from_file: AppConfig = toml::from_str(FILE)?;
    println!("from a file: {}", from_file.tidings);
    // Serialize never writes a secret: the token is "***".
    println!("written back:\n{}", toml::to_string(&from_file.tidings)?);
    Ok(())
}
