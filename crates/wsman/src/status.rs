//! `ReturnValue` codes to text: DMTF codes for `CIM_` methods, AMT `PT_STATUS` codes for `AMT_`
//! and `IPS_` methods (`docs/wsman.md` section 2.1).

/// The meaning of a method's `ReturnValue` for a class (class name or resource URI).
///
/// ```
/// use oobkit_wsman::return_value_text;
/// assert_eq!(return_value_text("CIM_PowerManagementService", 2), "unknown or unspecified error");
/// assert_eq!(return_value_text("IPS_OptInService", 0x24), "invalid parameter");
/// ```
pub fn return_value_text(class: &str, code: u32) -> &'static str {
    let class = crate::ns::class_name(class);
    if class.starts_with("CIM_") {
        cim(code)
    } else {
        pt_status(code)
    }
}

fn cim(code: u32) -> &'static str {
    match code {
        0 => "completed with no error",
        1 => "not supported",
        2 => "unknown or unspecified error",
        3 => "cannot complete within the timeout period",
        4 => "failed",
        5 => "invalid parameter",
        6 => "in use",
        4096 => "method parameters checked, job started",
        4097 => "invalid state transition",
        4098 => "use of timeout parameter not supported",
        4099 => "busy",
        _ => "unknown status",
    }
}

fn pt_status(code: u32) -> &'static str {
    match code {
        0x0000 => "success",
        0x0001 => "internal error",
        0x0002 => "not ready",
        0x0003 => "invalid mode",
        0x0004 => "invalid message length",
        0x000B => "not enough storage",
        0x000C => "invalid name",
        0x0010 => "not permitted",
        0x0024 => "invalid parameter",
        0x0806 => "invalid password",
        0x0809 => "data missing",
        0x0821 => "user consent required",
        _ => "unknown status",
    }
}
