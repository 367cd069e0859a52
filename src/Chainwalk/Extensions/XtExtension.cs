using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;

namespace Chainwalk.Extensions;

/// <summary>Whether an extension is used with <c>-m</c> (match) or <c>-j</c> (target).</summary>
public enum ExtensionKind : byte
{
    Match,
    Target,
}

/// <summary>Which families an extension exists for (libxt_ = both, libipt_ = IPv4, libip6t_ = IPv6).</summary>
[Flags]
public enum FamilyMask : byte
{
    V4 = 1,
    V6 = 2,
    Both = V4 | V6,
}

/// <summary>Whether an option takes an argument, as in getopt_long.</summary>
public enum OptionArg : byte
{
    None,
    Required,
    Optional,
}

/// <summary>Flags of an option, after libxtables' XTOPT_* flags.</summary>
[Flags]
public enum OptFlags : ushort
{
    None = 0,

    /// <summary>May be preceded by <c>!</c> (XTOPT_INVERT).</summary>
    Invert = 1,

    /// <summary>Must be given (XTOPT_MAND).</summary>
    Mandatory = 2,

    /// <summary>May be given more than once (XTOPT_MULTI).</summary>
    Multi = 4,

    /// <summary>The driver does not enforce "only once" or inversion itself; the extension does (old-style parse).</summary>
    Manual = 8,
}

/// <summary>
/// One option of an extension's declarative option table. <see cref="Id"/> is the extension's own
/// number for it; <see cref="Excludes"/> and <see cref="Also"/> are bit masks over ids, as in xt_option_entry.
/// </summary>
public sealed record XtOption(string Name, int Id, OptionArg Arg = OptionArg.Required, OptFlags Flags = OptFlags.None)
{
    public ulong Excludes { get; init; }
    public ulong Also { get; init; }

    public bool CanInvert => (Flags & OptFlags.Invert) != 0;
}

/// <summary>The parsed options of one use of an extension in a rule. Data must be cloneable for rule copies.</summary>
/// <remarks>
/// Every rule's match and target data derives from this, so its own fields take 8 bytes (a kube-proxy set has a
/// comment object per rule or two): option ids are below 32 (<see cref="MaxOptionId"/>, a test holds every extension
/// to it), revisions below 256.
/// </remarks>
public abstract class ExtensionData
{
    /// <summary>The highest option id an extension may declare (the bits of <see cref="Given"/>).</summary>
    public const int MaxOptionId = 31;

    /// <summary>Bit i set when the option with id i was given (the <c>xflags</c> of libxtables).</summary>
    public ulong Given
    {
        get => _given;
        set => _given = checked((uint)value);
    }

    /// <summary>The revision the rule uses; most extensions have one.</summary>
    public int Revision
    {
        get => _revision;
        set => _revision = checked((byte)value);
    }

    private uint _given;
    private byte _revision;

    public virtual ExtensionData Clone() => (ExtensionData)MemberwiseClone();
}

/// <summary>What an extension may ask about the rule it is parsed into.</summary>
public sealed class ParseContext
{
    public required IpFamily Family { get; init; }

    public required string Table { get; init; }

    /// <summary>The program name for messages: iptables, ip6tables, iptables-restore …</summary>
    public required string Program { get; init; }

    /// <summary>The rule's <c>-p</c> value so far (0 = any) and whether it is inverted.</summary>
    public ushort Protocol { get; set; }

    public bool ProtocolInverted { get; set; }

    /// <summary>The command given (known when FinalCheck runs): some checks happen only when a rule is built.</summary>
    public CommandKind Command { get; set; }

    /// <summary>True when the command builds a rule for the kernel (-A -I -R -D rule -C), as iptables-nft's nft_rule_new does.</summary>
    public bool BuildsRule => (Command & (CommandKind.Append | CommandKind.Insert | CommandKind.Replace | CommandKind.Delete | CommandKind.Check)) != 0;

    /// <summary>The rule being built; extensions may look at it in FinalCheck.</summary>
    public Rule? Rule { get; set; }

    public NameDb Names { get; init; } = NameDb.System;

    /// <summary>Whether the command line came from a restore file (some checks differ).</summary>
    public bool InRestore { get; init; }

    public XtablesException Error(string message) => XtablesException.Param(message);

    /// <summary>Lines an extension prints to stderr while parsing without failing (e.g. iprange's reversed range).</summary>
    public List<string> Warnings
    {
        get => _warnings ??= new();
        init => _warnings = value;
    }

    private List<string>? _warnings;

    /// <summary>Queues a warning line for stderr (what an extension prints with fprintf(stderr, …) and carries on).</summary>
    public void Warn(string line) => Warnings.Add(line);

    /// <summary>The command line being parsed and the getopt position, for options that take two arguments.</summary>
    internal string[]? Argv { get; set; }

    /// <summary>The getopt state of the command line (its optind), when parsing one.</summary>
    internal Getopt? Getopt { get; set; }

    /// <summary>The argv element after the option's argument (argv[optind]), or null at the end.</summary>
    public string? PeekArgument()
    {
        int i = Getopt?.Optind ?? int.MaxValue;
        return Argv is not null && i < Argv.Length ? Argv[i] : null;
    }

    /// <summary>Consumes the element <see cref="PeekArgument"/> returned (optind++).</summary>
    public void SkipArgument()
    {
        if (Getopt is not null) Getopt.Optind++;
    }
}

/// <summary>
/// A netfilter extension (xtables match or target): its option table drives parsing; it prints its save
/// form (<c>-S</c>, iptables-save) and its list form (<c>-L</c>), and states the kernel's load-time limits.
/// One subclass per extension, in one file, found by the <see cref="ExtensionRegistry"/>.
/// </summary>
public abstract class XtExtension
{
    /// <summary>The name used with -m/-j.</summary>
    public abstract string Name { get; }

    public abstract ExtensionKind Kind { get; }

    public virtual FamilyMask Families => FamilyMask.Both;

    /// <summary>The option table, in the order iptables lists it.</summary>
    public abstract IReadOnlyList<XtOption> Options { get; }

    /// <summary>Tables the kernel module accepts (null = any).</summary>
    public virtual IReadOnlyList<string>? Tables => null;

    /// <summary>Hooks the kernel module accepts (All = any).</summary>
    public virtual HookMask Hooks => HookMask.All;

    /// <summary>When false, iptables refuses the extension for a missing kernel module (ipvs, LED, rateest).</summary>
    public virtual bool KernelSupported => true;

    /// <summary>Creates the data for a new use of the extension in a rule (the extension's <c>init</c>).</summary>
    public abstract ExtensionData CreateData(ParseContext ctx);

    /// <summary>Parses one option; <paramref name="argument"/> is null for options without an argument.</summary>
    public abstract void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, ExtensionData data);

    /// <summary>Checks the combination of options once the rule is read (x6_fcheck / final_check).</summary>
    public virtual void FinalCheck(ParseContext ctx, ExtensionData data) { }

    /// <summary>Appends the save form, each token preceded by a space (e.g. <c> --dport 22</c>).</summary>
    public abstract void Save(StringBuilder sb, ExtensionData data, IpFamily family);

    /// <summary>Appends the -L form, each token preceded by a space (e.g. <c> tcp dpt:22</c>).</summary>
    public abstract void Print(StringBuilder sb, ExtensionData data, IpFamily family, bool numeric);

    /// <summary>
    /// The kernel's checkentry for this rule in this table and these hooks (the hooks that can reach the
    /// chain; None when no built-in chain reaches it yet). Returns null when the kernel accepts it, else
    /// the strerror text of the errno it returns ("Invalid argument", "No such file or directory" …),
    /// which iptables-nft prints as "RULE_APPEND failed (TEXT): rule in chain X" (exit 4). Table, hook and
    /// <see cref="RequiredProtocol"/> checks are done by the caller from <see cref="Tables"/> and <see cref="Hooks"/>.
    /// </summary>
    public virtual string? CheckEntry(RuleCheckContext ctx, ExtensionData data) => null;

    /// <summary>
    /// True when <see cref="CheckEntry"/> looks beyond the rule and its hooks (other rules of the table, objects of
    /// the host), so adding or removing another rule can change its answer: a table with such a rule is checked
    /// whole after each change instead of only the rules the change touched.
    /// </summary>
    public virtual bool ChecksSharedObjects => false;

    /// <summary>
    /// True when this match's data is configuration only: nothing changes it once the rule is built, and any per-rule
    /// state lives in the rule's runtime state (ctx.RuleState), not in the data. Rules whose uses of such a match save
    /// to the same text may then share one <see cref="MatchUse"/> (the restore reader does: a kube-proxy rule set
    /// repeats the same comment, mark and ctstate matches on many rules).
    /// </summary>
    public virtual bool SharesEqualData => false;

    /// <summary>
    /// The protocol the kernel module requires with <c>-p</c> (xt_match.proto), or 0. A rule without it,
    /// or with it inverted, is refused at load time.
    /// </summary>
    public virtual ushort RequiredProtocol => 0;

    /// <summary>
    /// True when iptables-nft 1.8.9 loses the match on its way through nf_tables, so save and list do not
    /// show it (e.g. tcp with only <c>! --sport 0:65535</c>).
    /// </summary>
    public virtual bool HiddenInListing(ExtensionData data) => false;

    /// <summary>
    /// The name the kernel knows the target by, shown in the -L target column (NOTRACK is the CT target
    /// with an alias flag: listed as CT, saved as NOTRACK).
    /// </summary>
    public virtual string RealName => Name;

    /// <summary>The save name: usually <see cref="Name"/>; aliases may save under another name.</summary>
    public virtual string SaveName(ExtensionData data) => Name;

    /// <summary>
    /// A match's test of the packet (the kernel module's <c>match</c> function). It may set
    /// <see cref="PacketContext.HotDrop"/> for a packet the kernel drops outright.
    /// </summary>
    public virtual bool Match(PacketContext ctx, ExtensionData data) => throw new NotEvaluatedException(Name);

    /// <summary>A target's action on the packet (the kernel module's <c>target</c> function) and its verdict.</summary>
    public virtual Verdict Execute(PacketContext ctx, ExtensionData data) => throw new NotEvaluatedException(Name);

    /// <summary>
    /// A match that matches every packet and changes nothing (comment): the walker skips it instead of calling
    /// <see cref="Match(PacketContext, ExtensionData)"/>. Set once by the extension's constructor.
    /// </summary>
    public bool MatchesEveryPacket { get; protected init; }

    /// <summary>
    /// Whether the match's result for a packet of an established connection depends only on what is the same for every
    /// packet of that connection's direction: its addresses, protocol and ports, its interfaces, its conntrack state
    /// (ctinfo, the connection's tuples and NAT status bits), the skb mark as the walk found it, and the host (addresses,
    /// routes: the memo checks <see cref="Host.VirtualHost.Generation"/>); and that it changes nothing. The engine then remembers
    /// a walk of such rules per connection direction (<c>Engine.FlowWalkMemo</c>) and replays its counters instead of
    /// walking again. Default false (volatile): flags, lengths, TTL, payload, rates, quotas, time, sets, random … .
    /// </summary>
    public virtual bool FlowStable(ExtensionData data) => MatchesEveryPacket;

    public override string ToString() => Name;
}

/// <summary>Typed helper: an extension whose data is <typeparamref name="TData"/>.</summary>
public abstract class XtExtension<TData> : XtExtension where TData : ExtensionData, new()
{
    public override ExtensionData CreateData(ParseContext ctx)
    {
        var d = new TData();
        Init(ctx, d);
        return d;
    }

    protected virtual void Init(ParseContext ctx, TData data) { }

    public sealed override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, ExtensionData data)
        => Parse(ctx, option, argument, invert, (TData)data);

    public sealed override void FinalCheck(ParseContext ctx, ExtensionData data) => FinalCheck(ctx, (TData)data);

    public sealed override void Save(StringBuilder sb, ExtensionData data, IpFamily family) => Save(sb, (TData)data, family);

    public sealed override void Print(StringBuilder sb, ExtensionData data, IpFamily family, bool numeric) => Print(sb, (TData)data, family, numeric);

    public sealed override string? CheckEntry(RuleCheckContext ctx, ExtensionData data) => CheckEntry(ctx, (TData)data);

    /// <remarks>
    /// The data was made by this extension's <see cref="CreateData"/> (a rule keeps the pair together), so it is not
    /// cast-checked per packet: a checked cast reads the data object's type, a cache miss on a cold rule even when the
    /// match does not look at its data (comment, on nearly every kube-proxy rule a new connection passes).
    /// </remarks>
    public sealed override bool Match(PacketContext ctx, ExtensionData data)
    {
        System.Diagnostics.Debug.Assert(data is TData, "a rule's match data comes from its own extension");
        return Match(ctx, System.Runtime.CompilerServices.Unsafe.As<TData>(data));
    }

    public sealed override Verdict Execute(PacketContext ctx, ExtensionData data)
    {
        System.Diagnostics.Debug.Assert(data is TData, "a rule's target data comes from its own extension");
        return Execute(ctx, System.Runtime.CompilerServices.Unsafe.As<TData>(data));
    }

    /// <summary>The packet test; extensions override it (the default says the extension is not evaluated).</summary>
    protected virtual bool Match(PacketContext ctx, TData data) => throw new NotEvaluatedException(Name);

    /// <summary>The target's action; extensions override it (the default says the extension is not evaluated).</summary>
    protected virtual Verdict Execute(PacketContext ctx, TData data) => throw new NotEvaluatedException(Name);

    protected abstract void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, TData data);

    protected virtual void FinalCheck(ParseContext ctx, TData data) { }

    protected abstract void Save(StringBuilder sb, TData data, IpFamily family);

    protected abstract void Print(StringBuilder sb, TData data, IpFamily family, bool numeric);

    protected virtual string? CheckEntry(RuleCheckContext ctx, TData data) => null;
}

/// <summary>What the kernel's checkentry sees: the table, the hooks that reach the rule, the rule's IP part.</summary>
public sealed class RuleCheckContext
{
    public required IpFamily Family { get; init; }

    public required string Table { get; init; }

    public required HookMask Hooks { get; init; }

    /// <summary>
    /// The hook of the built-in chain the rule is in, or None in a user chain. Through nf_tables a
    /// checkentry sees the hook only when the rule sits in a base chain (par->hook_mask is 0 otherwise),
    /// so hook tests made inside checkentry (not via <see cref="XtExtension.Hooks"/>) use this.
    /// </summary>
    public HookMask BaseChainHooks { get; init; }

    /// <summary>
    /// The hook mask checkentry itself sees under nf_tables (nft_compat): the chain's own hook for a rule in a
    /// built-in chain, None in a user chain (hook-dependent checkentry refusals then do not apply, while the
    /// module's fixed <see cref="XtExtension.Hooks"/> are still validated against every hook that reaches it).
    /// </summary>
    public HookMask EntryHooks { get; init; }

    public required Rule Rule { get; init; }

    /// <summary>
    /// Every rule of the table, chain by chain, for the few modules whose objects are shared by name
    /// between rules (IDLETIMER timers, RATEEST estimators); empty when not known.
    /// </summary>
    public IEnumerable<Rule> TableRules { get; init; } = [];
}
