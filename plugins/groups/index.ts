import { CHANNELS, definePlugin, serverFieldError, type ChannelBroker, type Plugin, type ServerDefinition, type TransportFactory } from '../../core/index.js';
import { isGroupEntry } from './config.js';
import { GroupUpstream } from './group-upstream.js';

export { groupServers, parseGroupFlag, isGroupEntry, type GroupConfig, type GroupEntry, type GroupMember } from './config.js';

const VERSION = '0.1.0';

/** `(group of a, b)`: what start-up prints beside a group's name; undefined for servers. */
export function describeGroup(server: ServerDefinition): string | undefined {
  return isGroupEntry(server.entry) ? `group of ${server.entry.group.members.map((m) => m.server).join(', ')}` : undefined;
}

/**
 * Groups: each group is a server (transport kind "group") whose upstream fans out to its members through
 * CHANNELS, so `/{group}/mcp` and `/{group}/sse` serve the merged, prefixed tools of several servers.
 * Group entries come from `groupServers()` (the `"groups"` map of a config file, or `--group`).
 */
export function groups(): Plugin {
  return definePlugin({
    name: 'groups',
    dependencies: ['proxy-jsonrpc'],
    register(api) {
      const live = new Set<GroupUpstream>();
      let channels: ChannelBroker | undefined;
      const factory: TransportFactory = {
        kind: 'group',
        claims: (entry) => isGroupEntry(entry) && entry.command === undefined && entry.url === undefined,
        validate(server) {
          if (!isGroupEntry(server.entry)) return;
          for (const member of server.entry.group.members) {
            const found = api.servers.get(member.server);
            if (!found) throw serverFieldError(server, 'group', `unknown member "${member.server}": a member must be one of the configured servers`);
            if (isGroupEntry(found.entry)) throw serverFieldError(server, 'group', `member "${member.server}" is a group: a group's members are servers`);
          }
        },
        create(options) {
          const upstream = new GroupUpstream(
            options,
            { channels: () => (channels ??= api.resolve(CHANNELS)), catalog: api.servers, version: VERSION },
            () => live.delete(upstream),
          );
          live.add(upstream);
          return upstream;
        },
      };
      api.transports.register('group', factory);
      // once a member answered the gateway's handshake (after each start): before that, a member the
      // proxy counts as failed while it retries it would refuse the group's initialize
      api.events.on('upstream.ready', ({ server }) => {
        for (const upstream of live) upstream.memberEvent(server, 'ready');
      });
      api.events.on('upstream.crashed', ({ server, willRetry }) => {
        for (const upstream of live) upstream.memberEvent(server, 'crashed', willRetry);
      });
      api.addHealth((server) => {
        if (!isGroupEntry(server.entry)) return {};
        const upstream = [...live].find((u) => u.groupName === server.name);
        const members: Record<string, string> = {};
        for (const member of server.entry.group.members) members[member.server] = upstream?.links.find((l) => l.name === member.server)?.state ?? 'on demand';
        return { group: { members } };
      });
    },
  });
}

export const plugin: Plugin = groups();
export default groups;
