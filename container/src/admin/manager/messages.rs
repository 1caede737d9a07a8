//! Tomcat's manager messages, word for word. Each function quotes the key
//! of `java/org/apache/catalina/manager/LocalStrings.properties` it
//! reproduces; `{0}` is filled in as Tomcat's `StringManager` does.

/// `managerServlet.deployed=OK - Deployed application at context path [{0}]`
pub fn deployed(path: &str) -> String {
    format!("OK - Deployed application at context path [{path}]")
}

/// `managerServlet.deployFailed=FAIL - Failed to deploy application at context path [{0}]`
pub fn deploy_failed(path: &str) -> String {
    format!("FAIL - Failed to deploy application at context path [{path}]")
}

/// `managerServlet.alreadyContext=FAIL - Application already exists at path [{0}]`
pub fn already_context(path: &str) -> String {
    format!("FAIL - Application already exists at path [{path}]")
}

/// `managerServlet.invalidPath=FAIL - Invalid context path [{0}] was specified`
/// (`null` when no path was given, as Java prints it).
pub fn invalid_path(path: Option<&str>) -> String {
    format!("FAIL - Invalid context path [{}] was specified", path.unwrap_or("null"))
}

/// `managerServlet.invalidCommand=FAIL - Invalid parameters supplied for command [{0}]`
pub fn invalid_command(command: &str) -> String {
    format!("FAIL - Invalid parameters supplied for command [{command}]")
}

/// `managerServlet.unknownCommand=FAIL - Unknown command [{0}]`
pub fn unknown_command(command: &str) -> String {
    format!("FAIL - Unknown command [{command}]")
}

/// `managerServlet.noContext=FAIL - No context exists named [{0}]`
pub fn no_context(path: &str) -> String {
    format!("FAIL - No context exists named [{path}]")
}

/// `managerServlet.noManager=FAIL - No manager exists for path [{0}]`
pub fn no_manager(path: &str) -> String {
    format!("FAIL - No manager exists for path [{path}]")
}

/// `managerServlet.exception=FAIL - Encountered exception [{0}]`
pub fn exception(what: &str) -> String {
    format!("FAIL - Encountered exception [{what}]")
}

/// `managerServlet.copyFail=FAIL - Unable to copy [{0}] to [{1}], details of the error may be in the server logs`
pub fn copy_fail(from: &std::path::Path, to: &std::path::Path) -> String {
    format!(
        "FAIL - Unable to copy [{}] to [{}], details of the error may be in the server logs",
        from.display(),
        to.display()
    )
}

/// `managerServlet.pathCheckFail=FAIL - Unable to use [{0}] as that is outside the expected directory [{1}]`
pub fn path_check_fail(input: &str, expected: &std::path::Path) -> String {
    format!(
        "FAIL - Unable to use [{input}] as that is outside the expected directory [{}]",
        expected.display()
    )
}

/// `managerServlet.listed=OK - Listed applications for virtual host [{0}]`
pub fn listed(host: &str) -> String {
    format!("OK - Listed applications for virtual host [{host}]")
}

/// `managerServlet.reloaded=OK - Reloaded application at context path [{0}]`
pub fn reloaded(path: &str) -> String {
    format!("OK - Reloaded application at context path [{path}]")
}

/// `managerServlet.started=OK - Started application at context path [{0}]`
pub fn started(path: &str) -> String {
    format!("OK - Started application at context path [{path}]")
}

/// `managerServlet.startFailed=FAIL - Application at context path [{0}] could not be started`
pub fn start_failed(path: &str) -> String {
    format!("FAIL - Application at context path [{path}] could not be started")
}

/// `managerServlet.stopped=OK - Stopped application at context path [{0}]`
pub fn stopped(path: &str) -> String {
    format!("OK - Stopped application at context path [{path}]")
}

/// `managerServlet.undeployed=OK - Undeployed application at context path [{0}]`
pub fn undeployed(path: &str) -> String {
    format!("OK - Undeployed application at context path [{path}]")
}

/// `managerServlet.serverInfo=OK - Server info\nTomcat Version: [{0}]\nOS
/// Name: [{1}]\nOS Version: [{2}]\nOS Architecture: [{3}]\nJVM Version:
/// [{4}]\nJVM Vendor: [{5}]`
pub fn server_info(fields: [&str; 6]) -> String {
    let [server, os, os_version, arch, jvm, vendor] = fields;
    format!(
        "OK - Server info\nTomcat Version: [{server}]\nOS Name: [{os}]\nOS Version: [{os_version}]\n\
         OS Architecture: [{arch}]\nJVM Version: [{jvm}]\nJVM Vendor: [{vendor}]"
    )
}

/// `managerServlet.noGlobal=FAIL - No global JNDI resources are available`
pub const NO_GLOBAL: &str = "FAIL - No global JNDI resources are available";

/// `managerServlet.resourcesAll=OK - Listed global resources of all types`
pub const RESOURCES_ALL: &str = "OK - Listed global resources of all types";

/// `managerServlet.resourcesType=OK - Listed global resources of type [{0}]`
pub fn resources_type(kind: &str) -> String {
    format!("OK - Listed global resources of type [{kind}]")
}

/// `managerServlet.findleaksList=OK - Found potential memory leaks in the following applications:`
pub const FINDLEAKS_LIST: &str = "OK - Found potential memory leaks in the following applications:";

/// `managerServlet.findleaksNone=OK - No memory leaks found`
pub const FINDLEAKS_NONE: &str = "OK - No memory leaks found";

/// `managerServlet.sessions=OK - Session information for application at context path [{0}]`
pub fn sessions(path: &str) -> String {
    format!("OK - Session information for application at context path [{path}]")
}

/// `managerServlet.sessiondefaultmax=Default maximum session inactive interval is [{0}] minutes`
pub fn session_default_max(minutes: i64) -> String {
    format!("Default maximum session inactive interval is [{minutes}] minutes")
}

/// `managerServlet.sessiontimeout=Inactive for [{0}] minutes: [{1}] sessions`
pub fn session_timeout(range: &str, count: u64) -> String {
    format!("Inactive for [{range}] minutes: [{count}] sessions")
}

/// `managerServlet.sessiontimeout.unlimited=Unlimited time: [{0}] sessions`
pub fn session_timeout_unlimited(count: u64) -> String {
    format!("Unlimited time: [{count}] sessions")
}

/// `managerServlet.sessiontimeout.expired=Inactive for [{0}] minutes: [{1}] sessions were expired`
pub fn session_timeout_expired(range: &str, count: u64) -> String {
    format!("Inactive for [{range}] minutes: [{count}] sessions were expired")
}

/// `managerServlet.deleteFail=FAIL - Unable to delete [{0}]. The continued presence of this file may cause problems.`
pub fn delete_fail(file: &std::path::Path) -> String {
    format!(
        "FAIL - Unable to delete [{}]. The continued presence of this file may cause problems.",
        file.display()
    )
}

/// `managerServlet.inService=FAIL - The application [{0}] is already being serviced`
pub fn in_service(path: &str) -> String {
    format!("FAIL - The application [{path}] is already being serviced")
}
