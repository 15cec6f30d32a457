//! plugins (request side): the gateway's own shaping of the upstream request, then
//! the configured chain, which may rewrite it or answer locally.

use crate::exchange::Exchange;
use crate::runtime::Runtime;
use crate::shape;
use switchyard_router::plugins::{Flow, UpstreamRequest};
use switchyard_wire::{ApiError, ErrorKind};

/// Shapes the request for the chosen model and candidate, runs the chain's request
/// hooks (global plugins, then the route's; the chain was made in govern), then sets
/// the fields the gateway owns.
pub fn request_side(runtime: &Runtime, x: &mut Exchange) -> Result<(), ApiError> {
    shape::for_candidate(runtime, x);
    if !x.plugins.is_empty() {
        let mut info = std::mem::take(x.plugins.info_mut());
        x.chain_selected(runtime, &mut info);
        *x.plugins.info_mut() = info;
    }
    if x.plugins.hooks().request {
        // A plugin keeping shared state on a server waits on the network; one that
        // embeds texts of its own waits on the model.
        let waits = (runtime.state.remote() && x.plugins.keeps_state()) || x.plugins.embeds();
        let mut run = || {
            x.plugins.on_request(&mut UpstreamRequest {
                body: &mut x.request,
                headers: &mut x.upstream_headers,
            })
        };
        let flow = if waits {
            super::off_the_async_workers(run)
        } else {
            run()
        };
        match flow {
            Ok(Flow::Continue) => {}
            Ok(Flow::Answer(answer)) => x.local = Some(answer),
            Err(failure) => {
                runtime.metrics.plugin_failure();
                return Err(ApiError::new(ErrorKind::PluginFailed, failure.to_string()));
            }
        }
    }
    shape::gateway_fields(runtime, x);
    Ok(())
}
