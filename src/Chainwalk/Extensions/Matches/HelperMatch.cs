using Chainwalk.Conntrack;
using Chainwalk.Engine;
using System.Text;
using Chainwalk.Net;

namespace Chainwalk.Extensions.Matches;

/// <summary>Options of <c>-m helper</c> (struct xt_helper_info; the name is at most 29 characters).</summary>
public sealed class HelperData : ExtensionData
{
    public string HelperName = string.Empty;
    public bool Invert;
}

/// <summary><c>-m helper [!] --helper NAME</c> (libxt_helper.c, xt_helper.c).</summary>
public sealed class HelperMatch : XtExtension<HelperData>
{
    public override string Name => "helper";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("helper", 0, OptionArg.Required, OptFlags.Invert | OptFlags.Mandatory),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, HelperData d)
    {
        string name = argument!;
        d.HelperName = name.Length > 29 ? name[..29] : name;
        if (invert) d.Invert = true;
    }

    /// <summary>xtables_save_string: bare when only [-_0-9A-Za-z], else double-quoted with \ before " \ '.</summary>
    internal static void AppendSaveString(StringBuilder sb, string value)
    {
        bool plain = value.Length > 0 && value.All(c => c == '_' || c == '-' || char.IsAsciiLetterOrDigit(c));
        sb.Append(' ');
        if (plain)
        {
            sb.Append(value);
            return;
        }
        sb.Append('"');
        foreach (char c in value)
        {
            if (c is '"' or '\\' or '\'') sb.Append('\\');
            sb.Append(c);
        }
        sb.Append('"');
    }

    /// <summary>
    /// helper_mt: only an expected connection (one with a master) has a helper to compare; Chainwalk's
    /// connections have none, so the match is its inversion, as the kernel's for a connection without master.
    /// </summary>
    protected override bool Match(PacketContext ctx, HelperData d) => d.Invert;

    protected override void Save(StringBuilder sb, HelperData d, IpFamily family)
    {
        if (d.Invert) sb.Append(" !");
        sb.Append(" --helper");
        AppendSaveString(sb, d.HelperName);
    }

    protected override void Print(StringBuilder sb, HelperData d, IpFamily family, bool numeric)
    {
        sb.Append(" helper match ").Append(d.Invert ? "! " : string.Empty).Append('"').Append(d.HelperName).Append('"');
    }
}
