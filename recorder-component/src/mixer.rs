pub fn probe() -> Result<(), opus::Error> {
    let _e = opus::Encoder::new(48000, opus::Channels::Mono, opus::Application::Voip)?;
    Ok(())
}
