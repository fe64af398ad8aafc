//! Property tests of the service and process manager decoders: any bytes
//! decode or fail cleanly, and what is encoded decodes to itself.

use bytes::Bytes;
use proptest::prelude::*;

use super::manager_wire::ManagerMsg;
use super::service_wire::{RemoteFailure, ServiceMsg};
use crate::registry::RegistryMsg;

proptest! {
    #[test]
    fn garbage_never_panics(data in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = ServiceMsg::decode(&data);
        let _ = ManagerMsg::decode(&data);
        let _ = RegistryMsg::decode(&data);
    }

    #[test]
    fn service_messages_round_trip(corr in any::<u64>(), to in any::<u64>(), protocol in ".{0,40}", payload in prop::collection::vec(any::<u8>(), 0..256), ok in any::<bool>()) {
        let msgs = [
            ServiceMsg::Call { corr, to, protocol: protocol.clone(), payload: Bytes::from(payload.clone()) },
            ServiceMsg::Cast { to, protocol: protocol.clone(), payload: Bytes::from(payload.clone()) },
            ServiceMsg::Reply {
                corr,
                result: if ok { Ok(Bytes::from(payload.clone())) } else { Err(RemoteFailure::Failed(protocol.clone())) },
            },
        ];
        for m in msgs {
            prop_assert_eq!(ServiceMsg::decode(&m.encode()).expect("decodes"), m);
        }
    }

    #[test]
    fn handoffs_round_trip(instance in ".{0,40}", state in prop::option::of(prop::collection::vec(any::<u8>(), 0..256)), leaving in any::<bool>()) {
        let m = ManagerMsg::Handoff { instance, state: state.map(Bytes::from), leaving };
        prop_assert_eq!(ManagerMsg::decode(&m.encode()).expect("decodes"), m);
    }
}
