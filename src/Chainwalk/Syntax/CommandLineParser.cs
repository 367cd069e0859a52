using System.Globalization;
using Chainwalk.Extensions;
using Chainwalk.Net;
using Chainwalk.Rules;

namespace Chainwalk.Syntax;

/// <summary>
/// The iptables/ip6tables command-line parser, following do_parse() of iptables 1.8.9 (xshared.c):
/// getopt with the options of every loaded extension merged in, implicit protocol matches, the
/// checks in the same order, and the same messages. Quirks of 1.8.9 are kept on purpose: -p -s -d -i
/// -o -j take the argv element after the option even when the value was attached (<c>-ptcp</c>).
/// </summary>
public sealed class CommandLineParser
{
    private const string ShortOpts = "-:A:C:D:R:I:L::S::M:F::Z::N:X::E:P:Vh::o:p:s:d:j:i:fbvw::W::nt:m:xc:g:46";

    private static readonly object GlobalOwner = new();

    private static readonly LongOption[] GlobalOptions = BuildGlobals();

    private readonly IpFamily _family;
    private readonly string _program;
    private readonly NameDb _names;
    private readonly bool _restore;

    public CommandLineParser(IpFamily family, string program, NameDb? names = null, bool restore = false)
    {
        _family = family;
        _program = program;
        _names = names ?? NameDb.System;
        _restore = restore;
    }

    /// <summary>The restore line number to report with -t errors in restore mode.</summary>
    public int Line { get; set; } = -1;

    private static LongOption[] BuildGlobals()
    {
        var g = new (string, OptionArg, char)[]
        {
            ("append", OptionArg.Required, 'A'), ("delete", OptionArg.Required, 'D'), ("check", OptionArg.Required, 'C'),
            ("insert", OptionArg.Required, 'I'), ("replace", OptionArg.Required, 'R'), ("list", OptionArg.Optional, 'L'),
            ("list-rules", OptionArg.Optional, 'S'), ("flush", OptionArg.Optional, 'F'), ("zero", OptionArg.Optional, 'Z'),
            ("new-chain", OptionArg.Required, 'N'), ("delete-chain", OptionArg.Optional, 'X'), ("rename-chain", OptionArg.Required, 'E'),
            ("policy", OptionArg.Required, 'P'), ("source", OptionArg.Required, 's'), ("destination", OptionArg.Required, 'd'),
            ("src", OptionArg.Required, 's'), ("dst", OptionArg.Required, 'd'), ("protocol", OptionArg.Required, 'p'),
            ("in-interface", OptionArg.Required, 'i'), ("jump", OptionArg.Required, 'j'), ("table", OptionArg.Required, 't'),
            ("match", OptionArg.Required, 'm'), ("numeric", OptionArg.None, 'n'), ("out-interface", OptionArg.Required, 'o'),
            ("verbose", OptionArg.None, 'v'), ("wait", OptionArg.Optional, 'w'), ("wait-interval", OptionArg.Optional, 'W'),
            ("exact", OptionArg.None, 'x'), ("fragments", OptionArg.None, 'f'), ("version", OptionArg.None, 'V'),
            ("help", OptionArg.Optional, 'h'), ("line-numbers", OptionArg.None, '0'), ("modprobe", OptionArg.Required, 'M'),
            ("set-counters", OptionArg.Required, 'c'), ("goto", OptionArg.Required, 'g'), ("ipv4", OptionArg.None, '4'),
            ("ipv6", OptionArg.None, '6'),
        };
        return g.Select(x => new LongOption(x.Item1, x.Item2, GlobalOwner, x.Item3)).ToArray();
    }

    /// <summary>One loaded extension instance (xtables_rule_match entry, or the target).</summary>
    private sealed class Loaded
    {
        public required XtExtension Ext { get; init; }
        public required ExtensionData Data { get; init; }
        public bool Completed { get; set; }
    }

    private sealed class State
    {
        public readonly List<Loaded> Matches = new();
        public Loaded? Target;
        public readonly List<XtExtension> OptionOrder = new(); // newest first, each extension once
        public string? Protocol;
        public bool ProtoUsed;
        public CommandOptions Options;
        public CommandOptions Inverted;
        public string? SourceText;
        public string? DestinationText;
        /// <summary>-s/-d already read by the plain restore path (one plain dotted quad each); PostParse takes them as they are.</summary>
        public IpNet? SourceNet;
        public IpNet? DestinationNet;
        public string InIface = string.Empty;
        public string OutIface = string.Empty;
        public ushort Proto;
        public bool Goto;
        public ulong Pcnt;
        public ulong Bcnt;

        /// <summary>Back to a new state's values (the plain restore path reuses one state for every line).</summary>
        public void Reset()
        {
            Matches.Clear();
            Target = null;
            OptionOrder.Clear();
            Protocol = null;
            ProtoUsed = false;
            Options = CommandOptions.None;
            Inverted = CommandOptions.None;
            SourceText = DestinationText = null;
            SourceNet = DestinationNet = null;
            InIface = OutIface = string.Empty;
            Proto = 0;
            Goto = false;
            Pcnt = Bcnt = 0;
        }
    }

    /// <summary>The plain path's state and context, reused from line to line (see <see cref="TryParsePlainRule"/>).</summary>
    private State? _plainState;
    private ParsedCommand? _plainCommand;
    private ParseContext? _plainContext;

    /// <summary>The chain name of the last plain line (interned; found plain).</summary>
    private string? _plainChain;
    private readonly List<string> _plainWarnings = new();

    /// <summary>Parses argv (argv[0] is the program name). Throws <see cref="XtablesException"/> on bad input.</summary>
    public ParsedCommand Parse(string[] argv)
    {
        var cmd = new ParsedCommand { Family = _family };
        try
        {
            return ParseInto(cmd, argv);
        }
        catch (XtablesException ex) when (cmd.Warnings.Count > 0 && ex.Preceding is null)
        {
            // What iptables printed on stderr before it failed (extension warnings) comes first.
            ex.Preceding = [.. cmd.Warnings];
            throw;
        }
    }

    private ParsedCommand ParseInto(ParsedCommand cmd, string[] argv)
    {
        var st = new State();
        var g = new Getopt(argv);
        var ctx = NewContext("filter", g, argv, cmd.Warnings);
        bool invert = false;
        bool tableSet = false;
        IReadOnlyList<LongOption> longOpts = BuildLongOptions(st);

        while (true)
        {
            int c = g.Next(ShortOpts, longOpts);
            if (c == -1) break;
            string? optarg = g.Optarg;
            // 1.8.9 takes these option values from argv[optind - 1] (a regression fixed in 1.8.10).
            string PrevArg() => argv[g.Optind - 1];

            if (c == 'L' && g.LastLong is { } lo)
            {
                if (lo.Owner == GlobalOwner)
                {
                    c = (char)lo.Tag;
                }
                else
                {
                    HandleExtensionOption(st, ctx, (XtExtension)lo.Owner, (XtOption)lo.Tag, optarg, invert);
                    invert = false;
                    continue;
                }
            }

            switch (c)
            {
                case 'A':
                    AddCommand(cmd, CommandKind.Append, CommandKind.None, invert);
                    cmd.Chain = optarg;
                    break;
                case 'C':
                    AddCommand(cmd, CommandKind.Check, CommandKind.None, invert);
                    cmd.Chain = optarg;
                    break;
                case 'D':
                    AddCommand(cmd, CommandKind.Delete, CommandKind.None, invert);
                    cmd.Chain = optarg;
                    if (HasArg(argv, g))
                    {
                        cmd.RuleNumber = ParseRuleNumber(argv[g.Optind++]);
                        cmd.Command = CommandKind.DeleteNum;
                    }
                    break;
                case 'R':
                    AddCommand(cmd, CommandKind.Replace, CommandKind.None, invert);
                    cmd.Chain = optarg;
                    if (HasArg(argv, g)) cmd.RuleNumber = ParseRuleNumber(argv[g.Optind++]);
                    else throw XtablesException.Param("-R requires a rule number");
                    break;
                case 'I':
                    AddCommand(cmd, CommandKind.Insert, CommandKind.None, invert);
                    cmd.Chain = optarg;
                    cmd.RuleNumber = HasArg(argv, g) ? ParseRuleNumber(argv[g.Optind++]) : 1;
                    break;
                case 'L':
                    AddCommand(cmd, CommandKind.List, CommandKind.Zero | CommandKind.ZeroNum, invert);
                    OptionalChainAndNumber(cmd, argv, g, optarg);
                    break;
                case 'S':
                    AddCommand(cmd, CommandKind.ListRules, CommandKind.Zero | CommandKind.ZeroNum, invert);
                    OptionalChainAndNumber(cmd, argv, g, optarg);
                    break;
                case 'F':
                    AddCommand(cmd, CommandKind.Flush, CommandKind.None, invert);
                    if (optarg is not null) cmd.Chain = optarg;
                    else if (HasArg(argv, g)) cmd.Chain = argv[g.Optind++];
                    break;
                case 'Z':
                    AddCommand(cmd, CommandKind.Zero, CommandKind.List | CommandKind.ListRules, invert);
                    if (optarg is not null) cmd.Chain = optarg;
                    else if (HasArg(argv, g)) cmd.Chain = argv[g.Optind++];
                    if (HasArg(argv, g))
                    {
                        cmd.RuleNumber = ParseRuleNumber(argv[g.Optind++]);
                        cmd.Command = (cmd.Command & ~CommandKind.Zero) | CommandKind.ZeroNum;
                    }
                    break;
                case 'N':
                    ParseChainName(optarg!, _family);
                    AddCommand(cmd, CommandKind.NewChain, CommandKind.None, invert);
                    cmd.Chain = optarg;
                    break;
                case 'X':
                    AddCommand(cmd, CommandKind.DeleteChain, CommandKind.None, invert);
                    if (optarg is not null) cmd.Chain = optarg;
                    else if (HasArg(argv, g)) cmd.Chain = argv[g.Optind++];
                    break;
                case 'E':
                    AddCommand(cmd, CommandKind.RenameChain, CommandKind.None, invert);
                    cmd.Chain = optarg;
                    if (HasArg(argv, g)) cmd.NewName = argv[g.Optind++];
                    else throw XtablesException.Param("-E requires old-chain-name and new-chain-name");
                    break;
                case 'P':
                    AddCommand(cmd, CommandKind.SetPolicy, CommandKind.None, invert);
                    cmd.Chain = optarg;
                    if (HasArg(argv, g)) cmd.Policy = argv[g.Optind++];
                    else throw XtablesException.Param("-P requires a chain and a policy");
                    break;
                case 'h':
                    cmd.HelpRequested = true;
                    return cmd;
                case 'V':
                    cmd.VersionRequested = true;
                    return cmd;
                case 'p':
                    {
                        SetOption(st, CommandOptions.Protocol, invert);
                        string proto = PrevArg().ToLowerInvariant();
                        st.Protocol = proto;
                        st.Proto = Protocols.Parse(proto, _names);
                        if (st.Proto == 0 && invert) throw XtablesException.Param("rule would never match protocol");
                        ctx.Protocol = st.Proto;
                        ctx.ProtocolInverted = invert;
                        if (_family == IpFamily.V6 && IsIpv6ExtensionHeader(st.Proto) && !invert)
                        {
                            cmd.Warnings.Add($"Warning: never matched protocol: {proto}. use extension match instead.");
                        }
                        break;
                    }
                case 's':
                    SetOption(st, CommandOptions.Source, invert);
                    st.SourceText = PrevArg();
                    break;
                case 'd':
                    SetOption(st, CommandOptions.Destination, invert);
                    st.DestinationText = PrevArg();
                    break;
                case 'g':
                    SetOption(st, CommandOptions.Jump, invert);
                    st.Goto = true;
                    cmd.JumpTo = ParseTargetName(optarg!);
                    break;
                case 'j':
                    SetOption(st, CommandOptions.Jump, invert);
                    CommandJump(st, ctx, cmd, PrevArg());
                    longOpts = BuildLongOptions(st);
                    break;
                case 'i':
                    {
                        string v = PrevArg();
                        if (v.Length == 0) throw XtablesException.Param("Empty interface is likely to be undesired");
                        SetOption(st, CommandOptions.InInterface, invert);
                        st.InIface = AddressParser.ParseInterface(v, cmd.Warnings);
                        break;
                    }
                case 'o':
                    {
                        string v = PrevArg();
                        if (v.Length == 0) throw XtablesException.Param("Empty interface is likely to be undesired");
                        SetOption(st, CommandOptions.OutInterface, invert);
                        st.OutIface = AddressParser.ParseInterface(v, cmd.Warnings);
                        break;
                    }
                case 'f':
                    if (_family == IpFamily.V6) throw XtablesException.Param("`-f' is not supported in IPv6, use -m frag instead");
                    SetOption(st, CommandOptions.Fragment, invert);
                    break;
                case 'v':
                    if (cmd.Verbose == 0) SetOption(st, CommandOptions.Verbose, invert);
                    cmd.Verbose++;
                    break;
                case 'm':
                    if (invert) throw XtablesException.Param("unexpected ! flag before --match");
                    CommandMatch(st, ctx, optarg!);
                    longOpts = BuildLongOptions(st);
                    break;
                case 'n':
                    SetOption(st, CommandOptions.Numeric, invert);
                    break;
                case 't':
                    if (invert) throw XtablesException.Param("unexpected ! flag before --table");
                    if (_restore && tableSet)
                    {
                        throw XtablesException.Param($"The -t option cannot be used in {_program}.\n");
                    }
                    cmd.Table = optarg!;
                    tableSet = true;
                    ParseContext old = ctx;
                    ctx = NewContext(cmd.Table, g, argv, cmd.Warnings);
                    ctx.Protocol = old.Protocol;
                    ctx.ProtocolInverted = old.ProtocolInverted;
                    break;
                case 'x':
                    SetOption(st, CommandOptions.Expanded, invert);
                    break;
                case 'w':
                    if (_restore) throw XtablesException.Param("You cannot use `-w' from iptables-restore");
                    cmd.Wait = true;
                    cmd.WaitSeconds = ParseWaitTime(optarg, argv, g);
                    break;
                case 'W':
                    ParseWaitInterval(optarg, argv, g, cmd);
                    break;
                case '0':
                    SetOption(st, CommandOptions.LineNumbers, invert);
                    break;
                case 'M':
                    break;
                case 'c':
                    {
                        SetOption(st, CommandOptions.Counters, invert);
                        string pcnt = optarg!;
                        string? bcnt = null;
                        // 1.8.9 looks for the comma from the second character on (strchr(pcnt + 1, ',')).
                        int comma = pcnt.Length > 1 ? pcnt.IndexOf(',', 1) : -1;
                        if (comma >= 0) bcnt = pcnt[(comma + 1)..];
                        if (bcnt is null && HasArg(argv, g)) bcnt = argv[g.Optind++];
                        if (bcnt is null) throw XtablesException.Param("-c requires packet and byte counter");
                        if (!TryScanU64(pcnt, out st.Pcnt)) throw XtablesException.Param("-c packet counter not numeric");
                        if (!TryScanU64(bcnt, out st.Bcnt)) throw XtablesException.Param("-c byte counter not numeric");
                        break;
                    }
                case '4':
                    if (_family == IpFamily.V4) break;
                    if (_restore)
                    {
                        cmd.SkipLine = true;
                        return cmd;
                    }
                    throw new XtablesException(XtablesExit.ParameterProblem, string.Empty) { Verbatim = true };
                case '6':
                    if (_family == IpFamily.V6) break;
                    if (_restore)
                    {
                        cmd.SkipLine = true;
                        return cmd;
                    }
                    throw new XtablesException(XtablesExit.ParameterProblem, string.Empty) { Verbatim = true };
                case 1:
                    if (optarg == "!")
                    {
                        if (invert) throw XtablesException.Param("multiple consecutive ! not allowed");
                        invert = true;
                        continue;
                    }
                    throw new XtablesException(XtablesExit.ParameterProblem, $"Bad argument `{optarg}'") { Verbatim = true };
                default:
                    if (CommandDefault(st, ctx, c, g, optarg, invert))
                    {
                        longOpts = BuildLongOptions(st);
                        continue;
                    }
                    break;
            }
            invert = false;
        }

        if (cmd.Table == "nat" && (cmd.Policy == "DROP" || cmd.JumpTo == "DROP" || st.Target?.Ext.Name == "DROP"))
        {
            throw XtablesException.Param("\nThe \"nat\" table is not intended for filtering, the use of DROP is therefore inhibited.\n\n");
        }

        ctx.Command = cmd.Command;
        foreach (Loaded m in st.Matches) FinishExtension(ctx, m);
        if (st.Target is not null) FinishExtension(ctx, st.Target);

        if (g.Optind < argv.Length) throw XtablesException.Param("unknown arguments found on commandline");
        if (cmd.Command == CommandKind.None) throw XtablesException.Param("no command specified");
        if (invert) throw XtablesException.Param("nothing appropriate following !");

        cmd.Options = st.Options;
        PostParse(cmd, st);
        GenericOptionCheck(cmd.Command, st.Options);

        if (cmd.Chain is not null && cmd.Chain.Length >= 29)
        {
            throw XtablesException.Param($"chain name `{cmd.Chain}' too long (must be under 29 chars)");
        }

        if ((cmd.Command & (CommandKind.Append | CommandKind.Delete | CommandKind.Check | CommandKind.Insert | CommandKind.Replace)) != 0)
        {
            if ((cmd.Chain == "PREROUTING" || cmd.Chain == "INPUT") && (st.Options & CommandOptions.OutInterface) != 0)
                throw XtablesException.Param($"Can't use -o with {cmd.Chain}\n");
            if ((cmd.Chain == "POSTROUTING" || cmd.Chain == "OUTPUT") && (st.Options & CommandOptions.InInterface) != 0)
                throw XtablesException.Param($"Can't use -i with {cmd.Chain}\n");
        }
        return cmd;
    }

    /// <summary>
    /// The restore lines large rule sets are made of, read without getopt and without an argv: <c>-A CHAIN</c>
    /// followed, each at most once, by <c>-s</c>/<c>-d</c> (a plain IPv4 address or prefix), <c>-i</c>/<c>-o</c>
    /// (a plain interface name), <c>-p tcp|udp|icmp|1-255</c>, <c>-m tcp|udp</c>, <c>--sport</c>/<c>--dport</c> (a port
    /// or a numeric range) and <c>-j</c> (a standard verdict or a chain). Each step calls what <see cref="Parse"/>
    /// calls for the same option (SetOption, LoadMatch and the implicit protocol match, HandleExtensionOption,
    /// FinishExtension, PostParse), so the rule is the same (GenericOptionCheck is left out: -A allows all of these).
    /// Returns null for any other line, any value that is not plain, anything that would warn or fail: the caller
    /// then runs <see cref="Parse"/>, which reads every line and gives iptables' messages. <paramref name="counters"/>
    /// is the line's [packets:bytes] when -c applies. The command returned is reused by the next call.
    /// </summary>
    internal ParsedCommand? TryParsePlainRule(string table, ReadOnlySpan<char> line, (ulong Packets, ulong Bytes)? counters, Func<ReadOnlySpan<char>, string> intern)
    {
        if (_family != IpFamily.V4 || !_restore) return null;
        // One command, state and context serve every plain line (the caller is done with a line's command before it
        // reads the next): a line that takes this path allocates little more than what its rule keeps.
        ParsedCommand cmd = _plainCommand ??= new ParsedCommand { Family = _family };
        cmd.Reset(table);
        State st = _plainState ??= new State();
        st.Reset();
        _plainWarnings.Clear();
        ParseContext ctx = _plainContext is { } pc && ReferenceEquals(pc.Table, table) ? pc : (_plainContext = NewContext(table, null, null, _plainWarnings));
        ctx.Protocol = 0;
        ctx.ProtocolInverted = false;
        ctx.Command = CommandKind.None;
        ctx.Rule = null;
        try
        {
            if (counters is { } c)
            {
                SetOption(st, CommandOptions.Counters, false);
                (st.Pcnt, st.Bcnt) = c;
            }
            int i = 0;
            bool first = true;
            while (NextWord(line, ref i, out ReadOnlySpan<char> opt))
            {
                // Every option read here takes one value.
                if (!NextWord(line, ref i, out ReadOnlySpan<char> val)) return null;
                if (first)
                {
                    if (!opt.SequenceEqual("-A")) return null;
                    // The chain of the line before, most often: its name was found plain and interned then.
                    if (!val.SequenceEqual(_plainChain))
                    {
                        if (!SaveFormCheck.IsPlainName(val)) return null;
                        _plainChain = intern(val);
                    }
                    cmd.Command = CommandKind.Append;
                    cmd.Chain = _plainChain;
                    first = false;
                    continue;
                }
                if (opt.Length < 2 || opt[0] != '-') return null;
                switch (opt)
                {
                    case "-s":
                    case "-d":
                        {
                            // A plain address and prefix only ("a.b.c.d[/n]", decimal without leading zeros): no names, masks or lists.
                            if (!AddressParser.TryParsePlainV4(val, out IpNet net)) return null;
                            CommandOptions o = opt[1] == 's' ? CommandOptions.Source : CommandOptions.Destination;
                            if ((st.Options & o) != 0) return null;
                            SetOption(st, o, false);
                            if (o == CommandOptions.Source) st.SourceNet = net;
                            else st.DestinationNet = net;
                            break;
                        }
                    case "-i":
                    case "-o":
                        {
                            if (!SaveFormCheck.IsPlainName(val) || val.Length + 1 > 16) return null;
                            CommandOptions o = opt[1] == 'i' ? CommandOptions.InInterface : CommandOptions.OutInterface;
                            if ((st.Options & o) != 0) return null;
                            SetOption(st, o, false);
                            if (o == CommandOptions.InInterface) st.InIface = intern(val);
                            else st.OutIface = intern(val);
                            break;
                        }
                    case "-p":
                        {
                            // A protocol number (ClassBench's "-p 1", "-p 47") is read as getopt reads it: only "tcp"/"udp" load an implicit match below.
                            string? proto = val switch { "tcp" => "tcp", "udp" => "udp", "icmp" => "icmp", _ => IsPlainProtocolNumber(val) ? intern(val) : null };
                            if (proto is null || (st.Options & CommandOptions.Protocol) != 0) return null;
                            SetOption(st, CommandOptions.Protocol, false);
                            st.Protocol = proto;
                            st.Proto = PlainProtocolNumber(proto);
                            ctx.Protocol = st.Proto;
                            ctx.ProtocolInverted = false;
                            break;
                        }
                    case "-m":
                        {
                            if (st.Matches.Count > 0 || val is not ("tcp" or "udp")) return null;
                            LoadMatch(st, ctx, FindMatchByName(val is "tcp" ? "tcp" : "udp")!);
                            break;
                        }
                    case "--sport":
                    case "--dport":
                        {
                            if (!IsPlainPortRange(val)) return null;
                            XtExtension? ext;
                            if (st.Matches.Count == 1)
                            {
                                ext = st.Matches[0].Ext;
                            }
                            else if (st.Matches.Count == 0 && st.Protocol is "tcp" or "udp")
                            {
                                // CommandDefault: an option no loaded extension knows loads the protocol's match.
                                ext = FindMatchByName(Protocols.ImplicitMatchName(st.Protocol, _names)!);
                                if (ext is null) return null;
                                st.ProtoUsed = true;
                                LoadMatch(st, ctx, ext);
                            }
                            else
                            {
                                return null;
                            }
                            if (ext.Name is not ("tcp" or "udp")) return null;
                            ReadOnlySpan<char> name = opt[2..];
                            XtOption? option = null;
                            IReadOnlyList<XtOption> options = ext.Options;
                            for (int k = 0; k < options.Count; k++)
                            {
                                if (name.SequenceEqual(options[k].Name))
                                {
                                    option = options[k];
                                    break;
                                }
                            }
                            if (option is null) return null;
                            HandleExtensionOption(st, ctx, ext, option, intern(val), false);
                            break;
                        }
                    case "-j":
                        {
                            if ((st.Options & CommandOptions.Jump) != 0 || !SaveFormCheck.IsPlainName(val)) return null;
                            string target = val switch { "ACCEPT" => Verdicts.Accept, "DROP" => Verdicts.Drop, "RETURN" => Verdicts.Return, _ => intern(val) };
                            if (target == Verdicts.Queue || (!Verdicts.IsStandard(target) && ExtensionRegistry.FindTarget(target, _family) is not null)) return null;
                            SetOption(st, CommandOptions.Jump, false);
                            cmd.JumpTo = ParseTargetName(target);
                            st.Target = null;
                            break;
                        }
                    default:
                        return null;
                }
            }
            if (first) return null;
            if (table == "nat" && cmd.JumpTo == Verdicts.Drop) return null;
            ctx.Command = cmd.Command;
            foreach (Loaded m in st.Matches) FinishExtension(ctx, m);
            cmd.Options = st.Options;
            if (cmd.Chain!.Length >= 29) return null;
            if ((cmd.Chain is "PREROUTING" or "INPUT" && (st.Options & CommandOptions.OutInterface) != 0)
                || (cmd.Chain is "POSTROUTING" or "OUTPUT" && (st.Options & CommandOptions.InInterface) != 0)) return null;
            PostParse(cmd, st);
            // GenericOptionCheck has nothing to refuse here: -A takes -s -d -p -j -i -o -c (commands_v_options).
            return _plainWarnings.Count == 0 && cmd.Rules.Count == 1 ? cmd : null;
        }
        catch (XtablesException)
        {
            return null;
        }
    }

    /// <summary>The next run of characters other than blank and tab (the restore tokenizer's separators here).</summary>
    private static bool NextWord(ReadOnlySpan<char> line, ref int i, out ReadOnlySpan<char> word)
    {
        while (i < line.Length && line[i] is ' ' or '\t') i++;
        int start = i;
        while (i < line.Length && line[i] is not (' ' or '\t')) i++;
        word = line[start..i];
        return i > start;
    }

    /// <summary><see cref="Protocols.Parse"/> of a plain -p value, remembered for the last two names (tcp, udp: every line asks).</summary>
    private ushort PlainProtocolNumber(string proto)
    {
        if (ReferenceEquals(proto, _lastProtoName)) return _lastProto;
        if (ReferenceEquals(proto, _previousProtoName)) (_lastProtoName, _lastProto, _previousProtoName, _previousProto) = (_previousProtoName, _previousProto, _lastProtoName, _lastProto);
        else (_lastProtoName, _lastProto, _previousProtoName, _previousProto) = (proto, Protocols.Parse(proto, _names), _lastProtoName, _lastProto);
        return _lastProto;
    }

    private string? _lastProtoName, _previousProtoName;
    private ushort _lastProto, _previousProto;

    /// <summary>A protocol number 1–255 in plain decimal (no sign, no leading zero).</summary>
    private static bool IsPlainProtocolNumber(ReadOnlySpan<char> s) => IsPlainPort(s) && s[0] != '0' && int.Parse(s, CultureInfo.InvariantCulture) <= 255;

    private static bool IsPlainPortRange(ReadOnlySpan<char> s)
    {
        int colon = s.IndexOf(':');
        return colon < 0 ? IsPlainPort(s) : IsPlainPort(s[..colon]) && IsPlainPort(s[(colon + 1)..]);
    }

    private static bool IsPlainPort(ReadOnlySpan<char> s)
    {
        if (s.Length is 0 or > 5 || (s.Length > 1 && s[0] == '0')) return false;
        uint v = 0;
        foreach (char c in s)
        {
            if (!char.IsAsciiDigit(c)) return false;
            v = v * 10 + (uint)(c - '0');
        }
        return v <= ushort.MaxValue;
    }

    private ParseContext NewContext(string table, Getopt? g, string[]? argv, List<string> warnings) => new()
    {
        Warnings = warnings,
        Family = _family,
        Table = table,
        Program = _program,
        Names = _names,
        InRestore = _restore,
        Argv = argv,
        Getopt = g,
    };

    // is_exthdr of xshared.c (1.8.9): routing, fragment, AH and destination options only.
    private static bool IsIpv6ExtensionHeader(ushort proto) => proto is 43 or 44 or 51 or 60;

    /// <summary>
    /// The long options getopt sees for a sequence of loaded extensions (newest first), built once per sequence:
    /// a trie keyed by extension, so a restore file of 100k similar rules does not rebuild the table per option.
    /// </summary>
    private sealed class OptionTable(LongOption[] options)
    {
        public LongOption[] Options { get; } = options;

        private readonly System.Collections.Concurrent.ConcurrentDictionary<XtExtension, OptionTable> _next = new(ReferenceEqualityComparer.Instance);

        public OptionTable With(XtExtension e) => _next.GetOrAdd(e, static (ext, self) =>
        {
            var list = new List<LongOption>(self.Options);
            foreach (XtOption o in ext.Options) list.Add(new LongOption(o.Name, o.Arg, ext, o));
            return new OptionTable([.. list]);
        }, this);
    }

    private static readonly OptionTable GlobalTable = new(GlobalOptions);

    private static IReadOnlyList<LongOption> BuildLongOptions(State st)
    {
        OptionTable t = GlobalTable;
        foreach (XtExtension e in st.OptionOrder) t = t.With(e);
        return t.Options;
    }

    private static void AddCommand(ParsedCommand cmd, CommandKind newCmd, CommandKind others, bool invert)
    {
        if (invert) throw XtablesException.Param("unexpected '!' flag");
        if ((cmd.Command & ~others) != 0)
        {
            throw XtablesException.Param($"Cannot use -{CmdChar(newCmd)} with -{CmdChar(cmd.Command & ~others)}");
        }
        cmd.Command |= newCmd;
    }

    private static char CmdChar(CommandKind c)
    {
        const string chars = "IDDRALFZZNXPESC";
        for (int i = 0; i < chars.Length; i++)
        {
            if (((int)c & (1 << i)) != 0) return chars[i];
        }
        return '?';
    }

    private static readonly CommandOptions[] InvertibleOptions =
        [CommandOptions.Source, CommandOptions.Destination, CommandOptions.Protocol, CommandOptions.InInterface, CommandOptions.OutInterface, CommandOptions.Fragment];

    private static char OptChar(CommandOptions o)
    {
        const string chars = "nsdpjvxio0cf";
        for (int i = 0; i < chars.Length; i++)
        {
            if (((int)o & (1 << i)) != 0) return chars[i];
        }
        return '?';
    }

    private static void SetOption(State st, CommandOptions option, bool invert)
    {
        if ((st.Options & option) != 0) throw XtablesException.Param($"multiple -{OptChar(option)} flags not allowed");
        st.Options |= option;
        if (invert)
        {
            if (Array.IndexOf(InvertibleOptions, option) < 0) throw XtablesException.Param($"cannot have ! before -{OptChar(option)}");
            st.Inverted |= option;
        }
    }

    /// <summary>xs_has_arg: the next argv element exists and does not start with '-' or '!'.</summary>
    private static bool HasArg(string[] argv, Getopt g) =>
        g.Optind < argv.Length && argv[g.Optind].Length > 0 && argv[g.Optind][0] != '-' && argv[g.Optind][0] != '!';

    private static void OptionalChainAndNumber(ParsedCommand cmd, string[] argv, Getopt g, string? optarg)
    {
        if (optarg is not null) cmd.Chain = optarg;
        else if (HasArg(argv, g)) cmd.Chain = argv[g.Optind++];
        if (HasArg(argv, g)) cmd.RuleNumber = ParseRuleNumber(argv[g.Optind++]);
    }

    private static int ParseRuleNumber(string text)
    {
        if (!NumberParsing.TryParseCUnsigned(text, int.MaxValue, out ulong n, 1))
        {
            throw XtablesException.Param($"Invalid rule number `{text}'");
        }
        return (int)n;
    }

    private static void ParseChainName(string name, IpFamily family)
    {
        if (name.Length >= 29) throw XtablesException.Param($"chain name `{name}' too long (must be under 29 chars)");
        if (name.Length > 0 && (name[0] == '-' || name[0] == '!'))
            throw XtablesException.Param($"chain name not allowed to start with `{name[0]}'");
        // Only the targets of this family clash (ip6tables -N TTL is fine); 1.8.9's messages end without "\n".
        if (ExtensionRegistry.FindTarget(name, family) is not null || Verdicts.IsStandard(name))
            throw XtablesException.Param("chain name may not clash with target name");
        foreach (char ch in name)
        {
            if (char.IsWhiteSpace(ch)) throw XtablesException.Param($"Invalid chain name `{name}'");
        }
    }

    private static string ParseTargetName(string name)
    {
        if (name.Length < 1) throw XtablesException.Param("Invalid target name (too short)");
        if (name.Length >= 29) throw XtablesException.Param($"Invalid target name `{name}' (28 chars max)");
        foreach (char ch in name)
        {
            if (ch is ' ' or '\t' or '\n' or '\r' or '\f' or '\v') throw XtablesException.Param($"Invalid target name `{name}'");
        }
        return name;
    }

    private void CommandJump(State st, ParseContext ctx, ParsedCommand cmd, string name)
    {
        cmd.JumpTo = ParseTargetName(name);
        XtExtension? t = Verdicts.IsStandard(name) ? null : ExtensionRegistry.FindTarget(name, _family);
        if (t is null)
        {
            st.Target = null;
            return;
        }
        if (!t.KernelSupported) throw ModuleMissing(t);
        st.Target = new Loaded { Ext = t, Data = t.CreateData(ctx) };
        st.OptionOrder.Remove(t);
        st.OptionOrder.Insert(0, t);
    }

    private XtablesException ModuleMissing(XtExtension e) =>
        new(XtablesExit.ParameterProblem, $"Warning: Extension {e.Name} revision 0 not supported, missing kernel module?")
        { Verbatim = true };

    private void CommandMatch(State st, ParseContext ctx, string name)
    {
        XtExtension? m = FindMatchByName(name);
        if (m is null) throw XtablesException.Param($"Couldn't load match `{name}':No such file or directory\n");
        LoadMatch(st, ctx, m);
    }

    private XtExtension? FindMatchByName(string name)
    {
        if (name.Length >= 29) return null;
        if (name is "icmpv6" or "ipv6-icmp") name = "icmp6";
        // The restore path asks for the same one or two matches (tcp, udp) on every line: remembered here.
        if (string.Equals(name, _lastMatchName, StringComparison.Ordinal)) return _lastMatch;
        XtExtension? found = string.Equals(name, _previousMatchName, StringComparison.Ordinal) ? _previousMatch : ExtensionRegistry.FindMatch(name, _family);
        (_lastMatchName, _lastMatch, _previousMatchName, _previousMatch) = (name, found, _lastMatchName, _lastMatch);
        return found;
    }

    private string? _lastMatchName, _previousMatchName;
    private XtExtension? _lastMatch, _previousMatch;

    private Loaded LoadMatch(State st, ParseContext ctx, XtExtension m)
    {
        if (!m.KernelSupported) throw ModuleMissing(m);
        bool clone = false;
        foreach (Loaded l in st.Matches)
        {
            if (l.Ext == m)
            {
                l.Completed = true;
                clone = true;
            }
        }
        var loaded = new Loaded { Ext = m, Data = m.CreateData(ctx) };
        st.Matches.Add(loaded);
        if (!clone) st.OptionOrder.Insert(0, m);
        return loaded;
    }

    private void HandleExtensionOption(State st, ParseContext ctx, XtExtension ext, XtOption opt, string? arg, bool invert)
    {
        Loaded? target = st.Target is not null && st.Target.Ext == ext ? st.Target : null;
        if (target is null)
        {
            foreach (Loaded l in st.Matches)
            {
                if (!l.Completed && l.Ext == ext)
                {
                    target = l;
                    break;
                }
            }
        }
        if (target is null)
        {
            // The option belongs to an extension whose instances are all completed: iptables reports it unknown.
            throw XtablesException.Param($"unknown option \"--{opt.Name}\"");
        }
        // libxtables finds the entry by id (xtables_option_lookup): an alias such as ttl's "--ttl" behaves as,
        // and is reported as, the first option with its id ("--ttl-eq"), inversion included.
        if ((opt.Flags & OptFlags.Manual) == 0)
        {
            opt = FirstWithId(ext.Options, opt.Id)!;
        }
        ulong bit = 1UL << opt.Id;
        if ((opt.Flags & OptFlags.Manual) == 0)
        {
            // libxtables names the option by the first table entry with its id, not the alias typed.
            string name = FirstWithId(ext.Options, opt.Id)?.Name ?? opt.Name;
            if ((target.Data.Given & bit) != 0 && (opt.Flags & OptFlags.Multi) == 0)
                throw XtablesException.Param($"{ext.Name}: option \"--{name}\" can only be used once.\n");
            if (invert && !opt.CanInvert) throw XtablesException.Param($"{ext.Name}: option \"--{name}\" cannot be inverted.\n");
            if (opt.Arg == OptionArg.Required && arg is null)
                throw XtablesException.Param($"{ext.Name}: option \"--{name}\" requires an argument.\n");
        }
        ctx.Protocol = st.Proto;
        ctx.ProtocolInverted = (st.Inverted & CommandOptions.Protocol) != 0;
        ext.Parse(ctx, opt, arg, invert, target.Data);
        target.Data.Given |= bit;
    }

    private bool CommandDefault(State st, ParseContext ctx, int c, Getopt g, string? optarg, bool invert)
    {
        if (st.Protocol is not null)
        {
            string? implicitName = Protocols.ImplicitMatchName(st.Protocol, _names);
            XtExtension? m = implicitName is null ? null : FindMatchByName(implicitName);
            if (m is not null)
            {
                bool loaded = st.Matches.Any(l => l.Ext == m);
                if (!loaded || !st.ProtoUsed)
                {
                    st.ProtoUsed = true;
                    LoadMatch(st, ctx, m);
                    g.Optind--;
                    return true;
                }
            }
        }
        if (c == ':') throw XtablesException.Param($"option \"{g.LastArg}\" requires an argument");
        if (c == '?') throw XtablesException.Param($"unknown option \"{g.LastArg}\"");
        throw XtablesException.Param($"Unknown arg \"{optarg}\"");
    }

    /// <summary>The first option of the table with id <paramref name="id"/> (xtables_option_lookup), or null.</summary>
    private static XtOption? FirstWithId(IReadOnlyList<XtOption> options, int id)
    {
        for (int k = 0; k < options.Count; k++)
        {
            if (options[k].Id == id) return options[k];
        }
        return null;
    }

    private static void FinishExtension(ParseContext ctx, Loaded l)
    {
        XtExtension e = l.Ext;
        // xtables_option_tfcall/mfcall: the extension's own final check runs first, then the generic one.
        e.FinalCheck(ctx, l.Data);
        ulong given = l.Data.Given;
        IReadOnlyList<XtOption> options = e.Options;
        for (int k = 0; k < options.Count; k++)
        {
            XtOption o = options[k];
            ulong bit = 1UL << o.Id;
            if ((o.Flags & OptFlags.Mandatory) != 0 && (given & bit) == 0)
                throw XtablesException.Param($"{e.Name}: option \"--{o.Name}\" must be specified\n");
            if ((given & bit) == 0 || (o.Also | o.Excludes) == 0) continue;
            // xtables_options_fcheck: every other option id in ascending order, "also" before "excl".
            for (int i = 0; i < 64; i++)
            {
                if (i == o.Id) continue;
                ulong ob = 1UL << i;
                if ((o.Also & ob) == 0 && (o.Excludes & ob) == 0) continue;
                XtOption? other = FirstWithId(options, i);
                if (other is null) continue;
                if ((o.Also & ob) != 0 && (given & ob) == 0)
                    throw XtablesException.Param($"{e.Name}: option \"--{o.Name}\" also requires \"--{other.Name}\".\n");
                if ((o.Excludes & ob) != 0 && (given & ob) != 0)
                    throw XtablesException.Param($"{e.Name}: option \"--{o.Name}\" cannot be used together with \"--{other.Name}\".\n");
            }
        }
    }

    /// <summary>parse_wait_time: sscanf("%i") of -w's optional value (so "1.5" is 1 and "0x10" is 16).</summary>
    private static double? ParseWaitTime(string? optarg, string[] argv, Getopt g)
    {
        string? text = optarg;
        if (text is null && HasArg(argv, g)) text = argv[g.Optind++];
        if (text is null) return null;
        int used = NumberParsing.ParseCPrefix(text, 0, out ulong s, out bool overflow);
        if (used == 0) throw XtablesException.Param("wait seconds not numeric");
        long v = overflow ? -1 : unchecked((int)(uint)s);
        return v < 0 ? null : v;
    }

    /// <summary>parse_wait_interval of 1.8.9: a value is required and checked, then ignored with a notice.</summary>
    private static void ParseWaitInterval(string? optarg, string[] argv, Getopt g, ParsedCommand cmd)
    {
        string? text = optarg;
        if (text is null && HasArg(argv, g)) text = argv[g.Optind++];
        if (text is null) throw XtablesException.Param("wait interval value required");
        if (NumberParsing.ParseCPrefix(text, 10, out ulong usec, out _) == 0) throw XtablesException.Param("wait interval not numeric");
        uint u = unchecked((uint)usec);
        if (u > 999999) throw XtablesException.Param($"too long usec wait {u} > 999999 usec");
        cmd.Warnings.Add("Ignoring deprecated --wait-interval option.");
    }

    private static bool TryScanU64(string text, out ulong value)
    {
        // sscanf("%llu"): leading white space, optional sign, decimal digits; trailing junk ignored.
        int used = NumberParsing.ParseCPrefix(text, 10, out value, out _);
        return used > 0;
    }

    private void PostParse(ParsedCommand cmd, State st)
    {
        bool ruleCommand = (cmd.Command & (CommandKind.Replace | CommandKind.Insert | CommandKind.Delete | CommandKind.Append | CommandKind.Check)) != 0;
        if (ruleCommand && _family == IpFamily.V4 && st.SourceText is null && st.DestinationText is null)
        {
            // The plain restore path: each address read already (one each, or none: 0.0.0.0/0).
            cmd.Rules.Add(BuildRule(cmd, st, st.SourceNet ?? IpNet.V4(0, 0), st.DestinationNet ?? IpNet.V4(0, 0), single: true));
            return;
        }
        string any = _family == IpFamily.V4 ? "0.0.0.0/0" : "::/0";
        string? s = st.SourceText ?? (ruleCommand ? any : null);
        string? d = st.DestinationText ?? (ruleCommand ? any : null);
        List<IpNet> srcs = s is null ? [] : AddressParser.ParseMultiple(s, _family, _names);
        List<IpNet> dsts = d is null ? [] : AddressParser.ParseMultiple(d, _family, _names);
        if ((srcs.Count > 1 || dsts.Count > 1) && (st.Inverted & (CommandOptions.Source | CommandOptions.Destination)) != 0)
        {
            throw XtablesException.Param("! not allowed with multiple source or destination IP addresses");
        }
        if (cmd.Command == CommandKind.Replace && (srcs.Count != 1 || dsts.Count != 1))
        {
            throw XtablesException.Param("Replacement rule does not specify a unique address");
        }
        if (!ruleCommand) return;

        // One rule (the usual case) takes the parsed extension data itself; several rules each get a copy.
        bool single = srcs.Count == 1 && dsts.Count == 1;
        foreach (IpNet src in srcs)
        {
            foreach (IpNet dst in dsts) cmd.Rules.Add(BuildRule(cmd, st, src, dst, single));
        }
    }

    /// <summary>One rule of the command for a source and destination; <paramref name="single"/>: the only one (it takes the parsed extension data itself).</summary>
    private Rule BuildRule(ParsedCommand cmd, State st, IpNet src, IpNet dst, bool single)
    {
        var r = new Rule
        {
            Family = _family,
            Source = src,
            Destination = dst,
            SourceInverted = (st.Inverted & CommandOptions.Source) != 0,
            DestinationInverted = (st.Inverted & CommandOptions.Destination) != 0,
            InInterface = st.InIface,
            OutInterface = st.OutIface,
            InInverted = (st.Inverted & CommandOptions.InInterface) != 0,
            OutInverted = (st.Inverted & CommandOptions.OutInterface) != 0,
            Protocol = st.Proto,
            ProtocolInverted = (st.Inverted & CommandOptions.Protocol) != 0,
            Fragment = (st.Options & CommandOptions.Fragment) != 0,
            FragmentInverted = (st.Inverted & CommandOptions.Fragment) != 0,
            Counters = new Counters(st.Pcnt, st.Bcnt),
        };
        if (st.Matches.Count > 0)
        {
            var ms = new MatchUse[st.Matches.Count];
            for (int i = 0; i < ms.Length; i++) ms[i] = new MatchUse(st.Matches[i].Ext, single ? st.Matches[i].Data : st.Matches[i].Data.Clone());
            r.Matches.SetAll(ms);
        }
        NftTcpUdpRoundTrip.Apply(r);
        if (st.Target is not null)
        {
            r.Target = new TargetUse { Name = st.Target.Ext.RealName, Extension = st.Target.Ext, Data = single ? st.Target.Data : st.Target.Data.Clone() };
        }
        else if (cmd.JumpTo is not null)
        {
            r.Target = TargetUse.Jump(cmd.JumpTo, st.Goto);
        }
        return r;
    }

    // Legal combinations of commands and options (commands_v_options in xshared.c): 'x' = illegal.
    //                                   -n  -s  -d  -p  -j  -v  -x  -i  -o --line -c  -f
    private static readonly (CommandKind Cmd, string Legal)[] Legality =
    [
        (CommandKind.Insert,      "x     x  x  "),
        (CommandKind.Delete,      "x     x  xx "),
        (CommandKind.DeleteNum,   "xxxxx xxxxxx"),
        (CommandKind.Replace,     "x     x  x  "),
        (CommandKind.Append,      "x     x  x  "),
        (CommandKind.List,        " xxxx  xx xx"),
        (CommandKind.Flush,       "xxxxx xxxxxx"),
        (CommandKind.Zero,        "xxxxx xxxxxx"),
        (CommandKind.ZeroNum,     "xxxxx xxxxxx"),
        (CommandKind.NewChain,    "xxxxx xxxxxx"),
        (CommandKind.DeleteChain, "xxxxx xxxxxx"),
        (CommandKind.SetPolicy,   "xxxxx xxxx x"),
        (CommandKind.RenameChain, "xxxxx xxxxxx"),
        (CommandKind.ListRules,   "xxxxx xxxxxx"),
        (CommandKind.Check,       "x     x  xx "),
    ];

    private static void GenericOptionCheck(CommandKind command, CommandOptions options)
    {
        for (int i = 0; i < 12; i++)
        {
            if (((int)options & (1 << i)) == 0) continue;
            int legal = 0;
            foreach (var (cmd, table) in Legality)
            {
                if ((command & cmd) == 0) continue;
                if (table[i] != 'x') legal = 1;
                else if (legal == 0) legal = -1;
            }
            if (legal == -1) throw XtablesException.Param($"Illegal option `-{OptChar((CommandOptions)(1 << i))}' with this command");
        }
    }
}
