//! JSON-RPC error objects with go-ethereum's codes and messages.

use jsonrpsee::types::ErrorObjectOwned;

/// A JSON-RPC error.
pub type RpcError = ErrorObjectOwned;
/// A method's result.
pub type RpcResult<T> = Result<T, RpcError>;

/// -32602: the parameters do not fit the method.
pub fn invalid_params(msg: impl Into<String>) -> RpcError {
    ErrorObjectOwned::owned(-32602, msg, None::<()>)
}

/// -32000: the request was understood and refused (go-ethereum's default code).
pub fn server(msg: impl Into<String>) -> RpcError {
    ErrorObjectOwned::owned(-32000, msg, None::<()>)
}

/// -32603: the node failed (database).
pub fn internal(msg: impl std::fmt::Display) -> RpcError {
    ErrorObjectOwned::owned(-32603, format!("internal error: {msg}"), None::<()>)
}

/// Code 3: the call reverted; `data` is the revert payload.
pub fn reverted(reason: Option<String>, data: &[u8]) -> RpcError {
    let msg = match reason {
        Some(r) => format!("execution reverted: {r}"),
        None => "execution reverted".to_string(),
    };
    ErrorObjectOwned::owned(3, msg, Some(format!("0x{}", hex::encode(data))))
}

/// A database failure while serving a request.
pub fn db_err(e: impl std::fmt::Display) -> RpcError {
    internal(e)
}
