namespace Chainwalk.Syntax;

/// <summary>The classes of failure libxtables distinguishes; the value is the process exit code.</summary>
public enum XtablesExit
{
    /// <summary>A rule or chain operation the ruleset refuses ("No chain/target/match by that name.").</summary>
    OtherProblem = 1,

    /// <summary>Bad command-line input (xtables_error(PARAMETER_PROBLEM, …)).</summary>
    ParameterProblem = 2,

    /// <summary>Version mismatch; also used by iptables for some resource problems.</summary>
    VersionProblem = 3,

    /// <summary>Resource problem: another app holds the xtables lock (exit 4).</summary>
    ResourceProblem = 4,
}

/// <summary>
/// An error as iptables reports it. <see cref="Message"/> is the text after the program prefix. A
/// parameter problem is printed as <c>iptables v1.8.9 (nf_tables): MESSAGE</c> followed by the "Try" line;
/// other problems are printed as <c>iptables: MESSAGE</c> or verbatim when <see cref="Verbatim"/> is set.
/// </summary>
public sealed class XtablesException : Exception
{
    public XtablesExit Exit { get; }

    /// <summary>When true the message is printed as is, without the program prefix.</summary>
    public bool Verbatim { get; init; }

    /// <summary>Lines printed on stderr before the error (warnings issued while parsing), or null.</summary>
    public IReadOnlyList<string>? Preceding { get; set; }

    /// <summary>The restore line the error belongs to, when known.</summary>
    public int? Line { get; set; }

    public XtablesException(XtablesExit exit, string message) : base(message)
    {
        Exit = exit;
    }

    public XtablesException() : base() { }

    public XtablesException(string message) : base(message) { Exit = XtablesExit.ParameterProblem; }

    public XtablesException(string message, Exception inner) : base(message, inner) { Exit = XtablesExit.ParameterProblem; }

    public static XtablesException Param(string message) => new(XtablesExit.ParameterProblem, message);

    public static XtablesException Other(string message) => new(XtablesExit.OtherProblem, message);
}
