//! plugins (request side): the gateway's own shaping of the upstream request, then
//! the configured chain, which may rewrite it or answer locally.

use crate::exchange::Exchange;
use crate::runtime::Runtime;
use crate::shape;
use switchyard_router::plugins::{Flow, UpstreamRequest};
use switchyard_wire::{ApiError, ErrorKind};

/// Shapes the request for the chosen model and candidate, runs the chain's request
/// hooks (global plugins, then the route's), then sets the fields the gateway owns.
pub fn request_side(runtime: &Runtime, x: &mut Exchange) -> Result<(), ApiError> {
    shape::for_candidate(runtime, x);
    let route = x.routed.as_ref().and_then(|r| r.index);
    let route_plugins = route
        .and_then(|i| runtime.policy.route(i))
        .map_or(&[][..], |r| r.plugins.as_slice());
    x.plugins = runtime
        .plugins
        .chain(&runtime.policy.global_plugins, route_plugins);
    if x.plugins.hooks().request {
        let mut chain = std::mem::take(&mut x.plugins);
        // The exchange holds an empty request while the chain works on the real one.
        let mut request = std::mem::take(&mut x.request);
        let mut headers = std::mem::take(&mut x.upstream_headers);
        let flow = {
            let info = x.info(runtime);
            let mut upstream = UpstreamRequest {
                body: &mut request,
                headers: &mut headers,
            };
            chain.on_request(&info, &mut upstream)
        };
        x.plugins = chain;
        x.request = request;
        x.upstream_headers = headers;
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
