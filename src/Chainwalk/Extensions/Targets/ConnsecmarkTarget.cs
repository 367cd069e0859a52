using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;

namespace Chainwalk.Extensions.Targets;

/// <summary>Options of <c>-j CONNSECMARK</c> (struct xt_connsecmark_target_info).</summary>
public sealed class ConnsecmarkData : ExtensionData
{
    /// <summary>1 = save (CONNSECMARK_SAVE), 2 = restore (CONNSECMARK_RESTORE).</summary>
    public byte Mode;
}

/// <summary><c>-j CONNSECMARK --save|--restore</c> (libxt_CONNSECMARK.c, xt_CONNSECMARK.c): mangle or security table.</summary>
public sealed class ConnsecmarkTarget : XtExtension<ConnsecmarkData>
{
    public const byte ModeSave = 1, ModeRestore = 2;

    public override string Name => "CONNSECMARK";

    public override ExtensionKind Kind => ExtensionKind.Target;

    public override IReadOnlyList<string>? Tables => ["mangle", "security"];

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("save", 0, OptionArg.None) { Excludes = 2 },
        new("restore", 1, OptionArg.None) { Excludes = 1 },
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, ConnsecmarkData d) =>
        d.Mode = option.Id == 0 ? ModeSave : ModeRestore;

    protected override void FinalCheck(ParseContext ctx, ConnsecmarkData d)
    {
        if (d.Given == 0) throw ctx.Error("CONNSECMARK target: parameter required");
    }

    private static string ModeName(byte mode) => mode == ModeSave ? "save" : "restore";

    protected override void Save(StringBuilder sb, ConnsecmarkData d, IpFamily family) => sb.Append(" --").Append(ModeName(d.Mode));

    protected override void Print(StringBuilder sb, ConnsecmarkData d, IpFamily family, bool numeric) =>
        sb.Append(" CONNSECMARK ").Append(ModeName(d.Mode));

    /// <summary>
    /// xt_CONNSECMARK.c: copies skb->secmark to the connection (save) or back (restore) when the one is set and the
    /// other is not. The virtual host has no security module, so no secmark is ever non-zero (SECMARK rules cannot
    /// even be loaded, see <see cref="SecmarkTarget"/>): nothing changes.
    /// </summary>
    protected override Verdict Execute(PacketContext ctx, ConnsecmarkData data) => Verdict.Continue;
}
