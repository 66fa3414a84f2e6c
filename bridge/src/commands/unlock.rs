//! UNLOCK_CONNECTOR: asks the station to unlock one connector (1.6 addresses it by connector
//! number, which is our EVSE number).

use ocpi::OcpiError;
use ocpi::types::{Command, CommandResponse, CommandResponseType};
use ocpp::{EvseRef, OcppVersion, StationCall};

use super::{Commands, response};

impl Commands {
    pub(super) async fn unlock_connector(
        &self,
        caller: super::Commander,
        command: Command,
    ) -> Result<CommandResponse, OcpiError> {
        let Command::UnlockConnector(unlock) = &command else {
            unreachable!("unlock_connector gets UNLOCK_CONNECTOR")
        };
        let target = match self.resolve(
            unlock.location_id.as_str(),
            Some(unlock.evse_uid.as_str()),
            Some(unlock.connector_id.as_str()),
        ) {
            Ok(t) => t,
            Err(r) => return Ok(r),
        };
        let Some(at) = target.at else {
            return Ok(response(CommandResponseType::Rejected, "unknown EVSE"));
        };
        let cmd = self.in_flight(&caller, &command, &target.station);
        self.begin(&cmd, |_| Ok(())).await?;
        let at = match target.handle.version() {
            OcppVersion::V16 => EvseRef::from_v16_connector(at.evse_id),
            OcppVersion::V201 => at,
        };
        let call = StationCall::UnlockConnector { at };
        tracing::info!(station = %target.station, peer = %caller.id, ?at, "UNLOCK_CONNECTOR forwarded");
        let this = self.clone();
        tokio::spawn(async move {
            this.run_call(cmd, target, call, |_, _| Ok(())).await;
        });
        Ok(self.accepted())
    }
}
